using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Generation.Sampling;
using Microsoft.ML.MemoryFormer.Models;
using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf decode</c>: batch-1 greedy decode tokens/s with the KV cache, MemoryFormer vs dense at d=1024 (--width), 6 layers,
/// d/64 heads, vocab 50304 (--vocab) (random weights, 16-token prompt), and the fraction of the bandwidth bound reached.
/// </summary>
internal sealed class DecodeCommand : Command<DecodeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("d (a multiple of 64). Default 1024 (512 with --quick).")]
        public int? Width { get; init; }

        [CommandOption("--vocab")]
        [Description("Vocabulary size. Default 50304; 256 gives the byte-level shape of bench lm.")]
        [DefaultValue(Gpt2Vocabulary)]
        public int Vocabulary { get; init; } = Gpt2Vocabulary;

        public override ValidationResult Validate() =>
            Width is { } w && (w <= 0 || w % 64 != 0) ? ValidationResult.Error($"--width {w}: must be a positive multiple of 64")
            : Vocabulary < 2 ? ValidationResult.Error($"--vocab {Vocabulary}: must be at least 2")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        Measure(settings, settings.Width, settings.Vocabulary).Publish(settings.Output);
        return 0;
    }

    /// <summary>GPT-2's padded vocabulary, the anchors' decode shape.</summary>
    private const int Gpt2Vocabulary = 50304;

    public static PerfTable Measure(PerfSettings settings) => Measure(settings, null, Gpt2Vocabulary);

    private static PerfTable Measure(PerfSettings settings, int? requestedWidth, int vocabulary)
    {
        int width = requestedWidth ?? (settings.Quick ? 512 : 1024), newTokens = settings.Quick ? 32 : 128, rounds = settings.Quick ? 3 : 5;
        string machine = MachineFigures.Measure(settings);
        double readGBps = BandwidthCommand.CopyGBps / 2;                        // copy counts read + write; decode mostly reads
        var table = new PerfTable("decode", $"Batch-1 decode with KV cache, d={width}, 6 layers, vocab {vocabulary}, {newTokens} new tokens",
            "model", "step", "weights", "ms/token", "tokens/s", "MB read/token", "bound tokens/s", "% of bound", "MF ÷ dense (same step, precision)");
        using var dense = NewModel(TransformerKind.Dense, width, vocabulary);
        using var mf = NewModel(TransformerKind.MemoryFormer, width, vocabulary);
        // Variants, timed interleaved round by round (each a whole generation; its median step time counts). MF runs each
        // reduced precision twice: with the tables in that precision too (the default) and with fp32 tables, to show what
        // the tables add.
        var variants = new (string Model, string Step, InferencePrecision Precision, bool Tables, LanguageModel Network)[]
        {
            ("dense", "op by op", InferencePrecision.Float32, false, dense), ("dense", "fused", InferencePrecision.Float32, false, dense),
            ("MemoryFormer", "fused", InferencePrecision.Float32, false, mf),
            ("dense", "fused", InferencePrecision.BFloat16, false, dense), ("MemoryFormer", "fused", InferencePrecision.BFloat16, false, mf),
            ("MemoryFormer", "fused", InferencePrecision.BFloat16, true, mf),
            ("dense", "fused", InferencePrecision.Int8, false, dense), ("MemoryFormer", "fused", InferencePrecision.Int8, false, mf),
            ("MemoryFormer", "fused", InferencePrecision.Int8, true, mf),
        };
        var ms = variants.Select(_ => new List<double>()).ToArray();
        for (int round = -1; round < rounds; round++)
            for (int i = 0; i < variants.Length; i++)
            {
                var v = variants[i];
                v.Network.UseFusedDecode = v.Step == "fused";
                v.Network.UseTableCopies = v.Tables;
                v.Network.UseInferencePrecision(v.Precision);                     // copies made outside the timed steps
                double median = MedianStepMs(v.Network, newTokens, vocabulary);
                if (round >= 0) ms[i].Add(median);
                v.Network.UseFusedDecode = true;
                v.Network.UseInferencePrecision(InferencePrecision.Float32);
                v.Network.UseTableCopies = true;
                GC.Collect();                                                       // free the dropped copies (≈ 1.7 GB of int8, 3.3 GB of bf16 tables at d=1024) now
                GC.WaitForPendingFinalizers();
            }
        for (int i = 0; i < variants.Length; i++)
        {
            var v = variants[i];
            double step = Timing.Median(ms[i]), megabytes = Megabytes(v.Network.Config.Kind, width, vocabulary, v.Precision, v.Tables);
            double bound = readGBps * 1e3 / megabytes;
            int denseIndex = Array.FindIndex(variants, d => d.Model == "dense" && d.Step == v.Step && d.Precision == v.Precision);
            string ratio = v.Model == "dense" ? "" : RatioText(ms[denseIndex], ms[i]);
            table.AddRow(v.Model, v.Step, WeightsText(v.Model, v.Precision, v.Tables), step, 1000 / step, megabytes, bound, 100 * (1000 / step) / bound, ratio);
        }
        table.AddNote($"{rounds} interleaved rounds after a warm-up one; per variant the median over rounds of one generation's median ms per step (prefill excluded); " +
            "MF ÷ dense = median of the per-round ratios of dense to MF step time (lowest–highest round), both decoded by the same fused step at the same precision");
        table.AddNote($"bound = bytes read per token at half the copy bandwidth ({readGBps:F1} GB/s); bytes: every dense matrix incl. the head (2 bytes a weight in bf16, 1 in int8 + 4 per row), K rows per Memory Layer (4 bytes a value, 2 with bf16 tables, 1 + 4 per row with int8 tables)");
        table.AddNote("random weights; bf16 / int8 = LanguageModel.UseInferencePrecision(BFloat16 / Int8) (MemoryFormer: the head, and the tables too unless marked fp32; " +
            "dense: the head and every matrix); their accuracy cost: perf bf16");
        table.AddNote(machine);
        return table;
    }

    private static string RatioText(List<double> dense, List<double> mf)
    {
        var ratios = dense.Zip(mf, (d, m) => d / m).Order().ToArray();
        return FormattableString.Invariant($"{Timing.Median(ratios):F2}× ({ratios[0]:F2}–{ratios[^1]:F2})");
    }

    private static LanguageModel NewModel(TransformerKind kind, int width, int vocabulary)
    {
        random.manual_seed(3);
        var model = new LanguageModel(new MemoryFormerConfig
        {
            Kind = kind, VocabularySize = vocabulary, Width = width, Layers = 6, Heads = width / 64, ContextLength = 256,
        });
        model.eval();
        return model;
    }

    private static string WeightsText(string model, InferencePrecision precision, bool tables) => precision switch
    {
        InferencePrecision.Float32 => "fp32",
        InferencePrecision.BFloat16 => model == "dense" ? "bf16 head + matrices" : tables ? "bf16 head + tables" : "bf16 head, fp32 tables",
        _ => model == "dense" ? "int8 head + matrices" : tables ? "int8 head + tables" : "int8 head, fp32 tables",
    };

    /// <summary>MB of weights one decode step reads.</summary>
    private static double Megabytes(TransformerKind kind, int width, int vocabulary, InferencePrecision precision, bool reducedTables)
    {
        double d = width, v = vocabulary, k = width / 8.0;
        double matrixBytes = precision switch { InferencePrecision.Float32 => 4, InferencePrecision.BFloat16 => 2, _ => 1 };
        double perRow = precision == InferencePrecision.Int8 ? 4 : 0;                                      // the row scales
        double head = (v * d * matrixBytes) + (v * perRow);
        if (kind == TransformerKind.Dense)
            return ((6 * ((12 * d * d * matrixBytes) + (9 * d * perRow))) + head) / 1e6;               // Q,K,V,O + 4d MLP (rows: 3d+d+4d+d), head
        bool int8Tables = reducedTables && precision == InferencePrecision.Int8;
        double tableBytes = reducedTables ? matrixBytes : 4, rows = 3 * k + k + k;                        // rows gathered: Q,K,V; ML1; ML2
        double tables = (3 * k * d + k * (k * 10) + k * d) * tableBytes + (int8Tables ? rows * 4 : 0);    // Q,K,V; ML1 → K(τ+2); ML2
        return ((6 * tables) + head) / 1e6;
    }

    /// <summary>
    /// Greedy decode of <paramref name="tokens"/> tokens after a fixed 16-token prompt with the KV cache; the median
    /// milliseconds per token, the first (prefill) step excluded.
    /// </summary>
    internal static double MedianStepMs(LanguageModel model, int tokens, int vocabulary = Gpt2Vocabulary)
    {
        var decoder = new TokenDecoder(model, padId: 0, startId: 0, CPU);
        var prompt = Enumerable.Range(0, 16).Select(i => (i * 7919) % vocabulary).ToArray();
        var options = new GenerationOptions { MaxNewTokens = tokens, Temperature = 0 };
        using var sampler = new TokenSampler(options, 0, vocabulary);
        var steps = new List<double>();
        long start = Stopwatch.GetTimestamp();
        foreach (var _ in decoder.Decode([prompt], sampler, useCache: true))
        {
            steps.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            start = Stopwatch.GetTimestamp();
        }
        return steps.Skip(1).Order().ElementAt((steps.Count - 1) / 2);
    }
}
