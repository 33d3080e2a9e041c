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
        if (double.IsNaN(BandwidthCommand.CopyGBps)) BandwidthCommand.Measure(settings);
        Measure(settings, settings.Width, settings.Vocabulary).Publish(settings.Output);
        return 0;
    }

    /// <summary>GPT-2's padded vocabulary, the anchors' decode shape.</summary>
    private const int Gpt2Vocabulary = 50304;

    public static PerfTable Measure(PerfSettings settings) => Measure(settings, null, Gpt2Vocabulary);

    private static PerfTable Measure(PerfSettings settings, int? requestedWidth, int vocabulary)
    {
        int width = requestedWidth ?? (settings.Quick ? 512 : 1024), newTokens = settings.Quick ? 32 : 128;
        double readGBps = BandwidthCommand.CopyGBps / 2;                        // copy counts read + write; decode mostly reads
        var table = new PerfTable("decode", $"Batch-1 decode with KV cache, d={width}, 6 layers, vocab {vocabulary}, {newTokens} new tokens",
            "model", "ms/token", "tokens/s", "MB read/token", "bound tokens/s", "% of bound", "MF ÷ dense");
        var dense = Run(TransformerKind.Dense, width, vocabulary, newTokens);
        var mf = Run(TransformerKind.MemoryFormer, width, vocabulary, newTokens);
        foreach (var (name, r) in new[] { ("dense", dense), ("MemoryFormer", mf) })
        {
            double bound = readGBps * 1e3 / r.MegabytesPerToken;
            table.AddRow(name, r.MsPerToken, 1000 / r.MsPerToken, r.MegabytesPerToken, bound, 100 * (1000 / r.MsPerToken) / bound,
                name == "dense" ? "" : (dense.MsPerToken / mf.MsPerToken).ToString("F2", System.Globalization.CultureInfo.InvariantCulture) + "×");
        }
        table.AddNote($"median ms per decode step over 3 generations after a warm-up one (prefill excluded); bound = bytes read per token at half the copy bandwidth ({readGBps:F1} GB/s); bytes: every dense matrix incl. the head, K rows per Memory Layer");
        return table;
    }

    private static (double MsPerToken, double MegabytesPerToken) Run(TransformerKind kind, int width, int vocabulary, int newTokens)
    {
        random.manual_seed(3);
        var config = new MemoryFormerConfig
        {
            Kind = kind, VocabularySize = vocabulary, Width = width, Layers = 6, Heads = width / 64, ContextLength = 256,
        };
        using var model = new LanguageModel(config);
        model.eval();
        var perRun = new List<double>();
        for (int run = 0; run < 4; run++)
        {
            double median = MedianStepMs(model, newTokens, vocabulary);
            if (run > 0) perRun.Add(median);
        }
        double d = width, v = vocabulary, k = width / 8.0;
        double floats = kind == TransformerKind.Dense
            ? 6 * 12 * d * d + v * d                                               // Q,K,V,O + 4d MLP, head
            : 6 * (3 * k * d + k * (k * 10) + k * d) + v * d;                       // Q,K,V; ML1 → K(τ+2); ML2; head
        return (perRun.OrderBy(x => x).ElementAt(perRun.Count / 2), floats * 4 / 1e6);
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
