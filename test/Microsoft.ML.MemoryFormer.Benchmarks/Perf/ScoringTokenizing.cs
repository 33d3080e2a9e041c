using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf scoring --tokenize-reps N</c>: the scoring path's tokenizing alone (<see cref="TextPairEncoder.EncodeWindows"/> of
/// the long rows with GPT-2 tokens, 128-token windows × ≤ 4, the <see cref="WindowLayout.Even"/> layout), each variant timed
/// interleaved on one thread, and the ids of every variant checked equal to the first's.
/// </summary>
internal static class ScoringTokenizing
{
    /// <summary>Times <paramref name="reps"/> passes over <paramref name="rows"/> of each variant, interleaved; publishes the table.</summary>
    public static void Run(string[] rows, int reps, string output, string machine)
    {
        var tokenizer = new Gpt2Tokenizer();
        var encoder = new TextPairEncoder(tokenizer, 128);
        var variants = new (string Name, Action Set)[]
        {
            ("Microsoft.ML.Tokenizers' TiktokenTokenizer.EncodeToIds on the whole text (before)", () => Gpt2WordEncoder.Enabled = false),
            ("the word scanner and its word → ids cache (Gpt2WordEncoder, default)", () => Gpt2WordEncoder.Enabled = true),
        };
        int[][][]? expected = null;
        long tokens = 0;
        var times = variants.Select(_ => new List<double>()).ToArray();
        for (int rep = -1; rep < reps; rep++)
        {
            for (int k = 0; k < variants.Length; k++)
            {
                int v = (k + Math.Max(rep, 0)) % variants.Length;
                variants[v].Set();
                var result = new int[rows.Length][][];
                long start = Stopwatch.GetTimestamp();
                for (int r = 0; r < rows.Length; r++)
                    result[r] = encoder.EncodeWindows(rows[r], null, 4, WindowLayout.Even);
                double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (rep < 0)
                {
                    if (expected is null)
                    {
                        expected = result;
                        tokens = result.Sum(w => w.Sum(x => (long)x.Length - 1));
                    }
                    else if (!Same(expected, result))
                    {
                        throw new InvalidOperationException($"Tokenizing variant '{variants[v].Name}' gave other ids.");
                    }
                    continue;
                }
                times[v].Add(ms);
            }
        }
        variants[1].Set();
        int checkedTexts = CheckWholeTexts(tokenizer);
        var table = new PerfTable("scoring-tokenize", "The scoring path's tokenizing alone: long rows, GPT-2, Even windows, one thread, variants interleaved",
            "variant", "median ms a pass", "fastest ms", "ns a token (median)", "before ÷ variant (median of per-rep ratios)");
        for (int v = 0; v < variants.Length; v++)
        {
            double median = Timing.Median(times[v].ToArray());
            double ratio = Timing.Median(times[0].Zip(times[v], (a, b) => a / b).ToArray());
            table.AddRow(variants[v].Name, median, times[v].Min(), median * 1e6 / tokens, FormattableString.Invariant($"{ratio:F3}"));
        }
        table.AddNote(FormattableString.Invariant($"{rows.Length} rows, {tokens:N0} window tokens a pass (start tokens excluded), {reps} passes of each variant; ids equal across variants (checked)"));
        table.AddNote(FormattableString.Invariant($"ids of the default equal the library path's on the whole Moby Dick text and the banking77 test texts ({checkedTexts:N0} texts, checked)"));
        table.AddNote(machine);
        table.Publish(output);
    }

    /// <summary>The default's ids against the library path's on the whole Moby Dick text and each banking77 test text, where present.</summary>
    private static int CheckWholeTexts(Gpt2Tokenizer tokenizer)
    {
        var texts = new List<string>();
        string mobyDick = BenchmarkPaths.SharedData(Path.Combine("text", "moby_dick.txt"));
        string banking = BenchmarkPaths.SharedData(Path.Combine("classification", "banking77_test.csv"));
        if (File.Exists(mobyDick)) texts.Add(File.ReadAllText(mobyDick));
        if (File.Exists(banking)) texts.AddRange(File.ReadLines(banking).Skip(1));
        foreach (var text in texts)
        {
            if (!tokenizer.Encode(text).SequenceEqual(tokenizer.EncodeWithLibrary(text)))
                throw new InvalidOperationException("The word encoder's ids differ from the library's on the scoring data.");
        }
        return texts.Count;
    }

    private static bool Same(int[][][] a, int[][][] b) =>
        a.Length == b.Length && a.Zip(b).All(p => p.First.Length == p.Second.Length && p.First.Zip(p.Second).All(q => q.First.AsSpan().SequenceEqual(q.Second)));
}
