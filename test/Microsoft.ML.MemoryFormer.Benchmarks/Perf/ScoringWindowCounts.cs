using System.Globalization;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf scoring</c>'s token accounting (exact, no timing): how a set of rows is cut into windows, how many of the
/// window tokens are start tokens and how many are text tokens read a second time because a long row's last window is
/// moved back to end at its last kept token (<see cref="TextPairEncoder.EncodeWindows"/>), and the attention work
/// (Σ L² over windows) with that layout and with the opt-in ones that read no token twice (<see cref="WindowLayout"/>,
/// <c>TextClassifierModel.ScoringWindowLayout</c>).
/// </summary>
internal static class ScoringWindowCounts
{
    /// <summary>One row per layout of <paramref name="rows"/>.</summary>
    public static PerfTable Table(string name, TextClassifierModel model, IReadOnlyList<string> rows)
    {
        var encoder = new TextPairEncoder(model.Tokenizer, model.MaxTokensPerRow);
        var table = new PerfTable("scoring-window-layout", "How the rows are cut into windows (exact token counts, one pass)",
            "rows", "layout", "rows", "windows (1/2/3/4+ per row)", "window tokens", "start tokens", "text tokens read twice", "Σ L² (attention work)", "÷ default", "as the AVX-512 kernel tiles it", "÷ default");
        long defaultSquares = 0, defaultTiled = 0;
        foreach (var (layout, cutting) in new[] { ("last window moved back (default)", WindowLayout.LastMovedBack), ("short last window (opt-in ShortLast)", WindowLayout.ShortLast), ("even windows (opt-in Even)", WindowLayout.Even) })
        {
            var counts = new long[5];
            long windows = 0, tokens = 0, squares = 0, distinct = 0, tiled = 0;
            foreach (var text in rows)
            {
                var cut = encoder.EncodeWindows(text, null, model.MaxWindowsPerRow, cutting);
                counts[Math.Min(cut.Length, 4)]++;
                windows += cut.Length;
                foreach (var window in cut)
                {
                    tokens += window.Length;
                    squares += (long)window.Length * window.Length;
                    tiled += Tiled(window.Length);
                }
                distinct += cut.Length == 1 ? cut[0].Length - 1 : Math.Min(Text.TokenBudget.Head(model.Tokenizer, text, (model.MaxTokensPerRow - 1) * model.MaxWindowsPerRow).Count, cut.Length * (model.MaxTokensPerRow - 1));
            }
            if (cutting == WindowLayout.LastMovedBack) (defaultSquares, defaultTiled) = (squares, tiled);
            table.AddRow(name, layout, rows.Count, FormattableString.Invariant($"{windows} ({counts[1]}/{counts[2]}/{counts[3]}/{counts[4]})"), tokens, windows,
                tokens - windows - distinct, squares, string.Create(CultureInfo.InvariantCulture, $"{(double)squares / defaultSquares:F3}"), tiled,
                string.Create(CultureInfo.InvariantCulture, $"{(double)tiled / defaultTiled:F3}"));
        }
        table.AddNote("as the AVX-512 kernel tiles it (WindowAttention.Head512): queries in groups of 8 against keys padded to 32 for Q·Kᵀ, the same queries against the L real keys for P·V: Σ (⌈L/8⌉·8 · ⌈L/32⌉·32 + ⌈L/8⌉·8 · L) / 2");
        table.AddNote("text tokens read twice = window tokens − start tokens − the row's kept text tokens; a start token (end-of-text) opens every window");
        return table;
    }

    private static long Tiled(long length)
    {
        long queries = (length + 7) / 8 * 8, keys = (length + 31) / 32 * 32;
        return ((queries * keys) + (queries * length)) / 2;
    }
}
