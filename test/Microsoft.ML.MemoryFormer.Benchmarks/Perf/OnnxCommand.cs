using System.ComponentModel;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf onnx</c> (issue 20): the exported ONNX graph in ONNX Runtime (CPU execution provider) against this library
/// on the same weights, same run: batched text-classification scoring (one padded batch, timed interleaved) and
/// batch-1 greedy decode with a KV cache (the library's fused decode path vs the KV-cache graph). Prints the
/// machine's GEMM GFLOP/s and copy bandwidth measured in the same run beside the ratios.
/// </summary>
internal sealed class OnnxCommand : Command<OnnxCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("d of both models (a multiple of 64). Default 256.")]
        [DefaultValue(256)]
        public int Width { get; init; } = 256;

        [CommandOption("--vocab")]
        [Description("Vocabulary of the decode model. Default 8192.")]
        [DefaultValue(8192)]
        public int Vocabulary { get; init; } = 8192;

        public override ValidationResult Validate() =>
            Width <= 0 || Width % 64 != 0 ? ValidationResult.Error($"--width {Width}: must be a positive multiple of 64")
            : Vocabulary < 2 ? ValidationResult.Error($"--vocab {Vocabulary}: must be at least 2")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        BandwidthCommand.Measure(settings);
        double gflops = MachineFigures.GemmGflops();
        var table = new PerfTable("onnx", $"ONNX Runtime {OrtVersion()} CPU vs this library (TorchSharp), d={settings.Width}, 4 layers, same weights",
            "workload", "library ms", "ONNX Runtime ms", "ORT ÷ library time", "max |diff|");
        Classification(settings, table);
        Decode(settings, table);
        table.AddNote($"machine in the same run: GEMM {gflops:F1} GFLOP/s (fp32 1024³ torch.mm), copy bandwidth {BandwidthCommand.CopyGBps:F1} GB/s (read + write)");
        table.AddNote($"ONNX Runtime: intra-op threads = torch threads ({settings.Threads}), graph optimisation level ALL; ratio > 1 means ONNX Runtime is slower");
        table.Publish(settings.Output);
        return 0;
    }

    private static MemoryFormerConfig Config(Settings s, int vocabulary, int context) => new()
    {
        VocabularySize = vocabulary, Width = s.Width, Layers = 4, Heads = s.Width / 64, ContextLength = context, BitsPerChunk = 8,
    };

    private static SessionOptions Options(Settings s) => new()
    {
        IntraOpNumThreads = s.Threads, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
    };

    /// <summary>One padded batch of 64 rows (16 … 64 tokens) through the classifier: ms per batch.</summary>
    private static void Classification(Settings s, PerfTable table)
    {
        random.manual_seed(5);
        const int rows = 64, longest = 64;
        var network = new SequenceClassifier(Config(s, 257, longest), 4, PoolingKind.Mean, 0);
        network.eval();
        var lengths = Enumerable.Range(0, rows).Select(r => 16 + (r * 37 % (longest - 15))).ToArray();
        var ids = new long[rows * longest];
        var mask = new long[rows * longest];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < lengths[r]; j++)
                (ids[r * longest + j], mask[r * longest + j]) = ((r * 131 + j * 17) % 256, 1);
        using var tokens = tensor(ids, [rows, longest]);
        using var keyMask = tensor(mask.Select(m => m == 1).ToArray(), [rows, longest]);
        using var stream = new MemoryStream();
        using var model = new TextClassifierModel(network, new Text.ByteLevelTokenizer(), longest, CPU);
        OnnxModelExporter.Write(OnnxModelExporter.TextClassifier(model, Data.PredictionKind.MulticlassClassification, null), stream);
        using var options = Options(s);
        using var session = new InferenceSession(stream.ToArray(), options);
        var inputs = new[]
        {
            NamedOnnxValue.CreateFromTensor(MemoryFormerOnnxNames.InputIds, new DenseTensor<long>(ids, [rows, longest])),
            NamedOnnxValue.CreateFromTensor(MemoryFormerOnnxNames.AttentionMask, new DenseTensor<long>(mask, [rows, longest])),
        };
        float[] library = [], onnx = [];
        void Library()
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            library = network.Forward(tokens, keyMask).data<float>().ToArray();
        }
        void Ort()
        {
            using var results = session.Run(inputs);
            onnx = results.First(r => r.Name == MemoryFormerOnnxNames.Logits).AsTensor<float>().ToArray();
        }
        var ms = Timing.Interleave([Library, Ort], 7);
        table.AddRow($"classification, batch {rows} × ≤{longest} tokens (ms/batch)", ms[0], ms[1], ms[1] / ms[0],
            MaxDiff(library, onnx).ToString("g2", System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Greedy batch-1 decode after a 16-token prompt: median ms per new token (prefill excluded).</summary>
    private static void Decode(Settings s, PerfTable table)
    {
        random.manual_seed(3);
        int newTokens = s.Quick ? 16 : 48;
        var config = Config(s, s.Vocabulary, 128);
        using var lm = new LanguageModel(config);
        lm.eval();
        double libraryMs = Enumerable.Range(0, 3).Select(_ => DecodeCommand.MedianStepMs(lm, newTokens, s.Vocabulary)).Skip(1).Min();
        using var stream = new MemoryStream();
        lm.ExportToOnnx(stream, kvCache: true);
        using var options = Options(s);
        using var session = new InferenceSession(stream.ToArray(), options);
        double onnxMs = Enumerable.Range(0, 3).Select(_ => OrtDecodeMedianMs(session, config, newTokens)).Skip(1).Min();
        table.AddRow($"batch-1 decode with KV cache, vocab {s.Vocabulary}, {newTokens} tokens (ms/token)", libraryMs, onnxMs, onnxMs / libraryMs, "");
    }

    private static double OrtDecodeMedianMs(InferenceSession session, MemoryFormerConfig config, int newTokens)
    {
        var past = Enumerable.Range(0, 2 * config.Layers)
            .Select(_ => new DenseTensor<float>(Array.Empty<float>(), [1, config.Heads, 0, config.HeadWidth])).ToArray();
        long[] step = Enumerable.Range(0, 16).Select(i => (long)((i * 7919) % config.VocabularySize)).ToArray();
        int seen = 0;
        var times = new List<double>();
        for (int t = 0; t <= newTokens; t++)
        {
            long start = Stopwatch.GetTimestamp();
            seen += step.Length;
            var inputs = new List<NamedOnnxValue>
            {
                NamedOnnxValue.CreateFromTensor(MemoryFormerOnnxNames.InputIds, new DenseTensor<long>(step, [1, step.Length])),
                NamedOnnxValue.CreateFromTensor(MemoryFormerOnnxNames.AttentionMask, new DenseTensor<long>(Enumerable.Repeat(1L, seen).ToArray(), [1, seen])),
            };
            for (int i = 0; i < config.Layers; i++)
            {
                inputs.Add(NamedOnnxValue.CreateFromTensor(MemoryFormerOnnxNames.PastKeyPrefix + i, past[2 * i]));
                inputs.Add(NamedOnnxValue.CreateFromTensor(MemoryFormerOnnxNames.PastValuePrefix + i, past[2 * i + 1]));
            }
            using (var results = session.Run(inputs))
            {
                var byName = results.ToDictionary(r => r.Name, r => r.AsTensor<float>());
                var logits = byName[MemoryFormerOnnxNames.Logits];
                int v = config.VocabularySize, last = (step.Length - 1) * v, best = 0;
                for (int j = 1; j < v; j++)
                    if (logits.GetValue(last + j) > logits.GetValue(last + best)) best = j;
                for (int i = 0; i < config.Layers; i++)
                {
                    past[2 * i] = byName[MemoryFormerOnnxNames.PresentKeyPrefix + i].ToDenseTensor();
                    past[2 * i + 1] = byName[MemoryFormerOnnxNames.PresentValuePrefix + i].ToDenseTensor();
                }
                step = [best];
            }
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        return times.Skip(1).Order().ElementAt((times.Count - 1) / 2);
    }

    private static string OrtVersion() => typeof(InferenceSession).Assembly.GetName().Version?.ToString(3) ?? "";

    private static double MaxDiff(float[] a, float[] b) =>
        a.Length != b.Length ? double.NaN : a.Zip(b).Max(p => Math.Abs((double)p.First - p.Second));
}
