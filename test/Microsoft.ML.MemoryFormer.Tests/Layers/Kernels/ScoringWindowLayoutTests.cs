using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The opt-in window layouts of scoring (<see cref="TextClassifierModel.ScoringWindowLayout"/>): rows that fit
/// one window score exactly as by default, long rows are read as the layout cuts them on both scoring paths.</summary>
public class ScoringWindowLayoutTests
{
    private static readonly (string, string?)[] ShortRows = [("short text", null), (new string('x', 31), null), ("a pair", "of texts that is long enough to be cut")];

    // byte-level tokens, windows of 32 (31 text tokens): 70 bytes → 3 windows; 200 bytes → the first 124 in 4 windows
    private static readonly (string, string?)[] LongRows =
        [(string.Concat(Enumerable.Range(0, 7).Select(i => $"w{i} more ")).PadRight(70, '.'), null), (string.Concat(Enumerable.Range(0, 40).Select(i => $"t{i},")), null)];

    private static float[][] Score(TextClassifierModel model, WindowLayout layout, (string, string?)[] rows, bool reference = false)
    {
        (model.ScoringWindowLayout, model.UseReferenceScoring) = (layout, reference);
        return model.LogProbabilities(rows);
    }

    [Fact]
    public void Rows_that_fit_one_window_and_pairs_score_the_same_bits_in_every_layout()
    {
        using var model = ScoringTestModels.Small(3, seed: 5, windowTokens: 32);
        var expected = Score(model, WindowLayout.LastMovedBack, ShortRows);
        foreach (var layout in Enum.GetValues<WindowLayout>())
            Assert.Equal(expected, Score(model, layout, ShortRows));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Long_rows_are_read_as_the_layout_cuts_them_on_the_fused_and_the_reference_path(int layoutValue)
    {
        var layout = (WindowLayout)layoutValue;                                  // ShortLast, Even (the enum is internal)
        Assert.NotEqual(WindowLayout.LastMovedBack, layout);
        using var model = ScoringTestModels.Small(3, seed: 5, windowTokens: 32);
        model.ScoringWindowLayout = layout;
        var windows = model.Encode(LongRows[0].Item1, null);
        Assert.Equal(layout == WindowLayout.ShortLast ? [32, 32, 9] : new[] { 25, 24, 24 }, windows.Select(w => w.Length).ToArray());
        Assert.Equal(70, windows.Sum(w => w.Length - 1));                   // every kept token once
        var fused = Score(model, layout, LongRows);
        var reference = Score(model, layout, LongRows, reference: true);
        for (int r = 0; r < LongRows.Length; r++)
            for (int c = 0; c < 3; c++)
                Assert.True(Math.Abs(fused[r][c] - reference[r][c]) <= 1e-4f, $"row {r}, class {c}: {fused[r][c]} vs {reference[r][c]}");
        Assert.NotEqual(Score(model, WindowLayout.LastMovedBack, LongRows)[0], fused[0]);   // the layout is read
    }
}
