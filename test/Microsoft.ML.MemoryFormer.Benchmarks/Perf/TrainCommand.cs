using System.ComponentModel;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf train</c>: whole-model training tokens/s, MemoryFormer vs the dense transformer of the same shape, same
/// tokens per step (random bytes, vocab 256; forward + backward + clip 1.0 + AdamW, as in the anchors §2).
/// </summary>
internal sealed class TrainCommand : Command<TrainCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("Only the shape of this width (256 or 512), e.g. to trace one run. Default: both.")]
        public int? Width { get; init; }
    }

    private static readonly (int Width, int Layers, int Heads, int Context, int Batch)[] Shapes =
        [(256, 4, 4, 128, 16), (512, 6, 8, 256, 8)];

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        Measure(settings, settings.Width).Publish(settings.Output);
        return 0;
    }

    public static PerfTable Measure(PerfSettings settings) => Measure(settings, null);

    private static PerfTable Measure(PerfSettings settings, int? width)
    {
        var table = new PerfTable("train", "Training tokens/s, MemoryFormer vs dense (same tokens per step)",
            "shape", "model", "step ms", "fwd+bwd ms", "clip+AdamW ms", "tokens/s", "MF ÷ dense");
        foreach (var s in Shapes.Where(s => width is null || s.Width == width))
        {
            var dense = Run(s, TransformerKind.Dense, settings.Quick);
            var mf = Run(s, TransformerKind.MemoryFormer, settings.Quick);
            string shape = $"d={s.Width} L={s.Layers} ctx{s.Context}×{s.Batch}";
            table.AddRow(shape, "dense", dense.Step, dense.ForwardBackward, dense.Optimizer, dense.TokensPerSecond, "");
            table.AddRow(shape, "MemoryFormer", mf.Step, mf.ForwardBackward, mf.Optimizer, mf.TokensPerSecond,
                (mf.TokensPerSecond / dense.TokensPerSecond).ToString("F2", System.Globalization.CultureInfo.InvariantCulture) + "×");
        }
        table.AddNote("median over timed steps after warm-up (d=256: 3 + 10, d=512: 2 + 5; --quick: 1 + 3); MF τ=8, K=d/8, fused CPU kernels; tables lr 3e-3, dense 1e-3 (TrainingOptions defaults)");
        return table;
    }

    private static (double Step, double ForwardBackward, double Optimizer, double TokensPerSecond) Run(
        (int Width, int Layers, int Heads, int Context, int Batch) s, TransformerKind kind, bool quick)
    {
        random.manual_seed(1337);
        var config = new MemoryFormerConfig
        {
            Kind = kind, VocabularySize = 256, Width = s.Width, Layers = s.Layers, Heads = s.Heads, ContextLength = s.Context,
        };
        using var model = new LanguageModel(config);
        var windows = randint(0, 256, [s.Batch * 4, s.Context + 1]);
        var task = new LanguageModelTask(model, windows, null, s.Batch, seed: 1, CPU);
        var options = new TrainingOptions { MaxSteps = 1000, WarmupSteps = 10 };
        using var optimizer = new ModelOptimizer(model, options);
        model.train();
        int warmup = quick ? 1 : s.Width >= 512 ? 2 : 3, timed = quick ? 3 : s.Width >= 512 ? 5 : 10;
        var fb = new List<double>();
        var opt = new List<double>();
        for (int step = 0; step < warmup + timed; step++)
        {
            using var scope = NewDisposeScope();
            long start = Stopwatch.GetTimestamp();
            optimizer.ZeroGrad();
            var (loss, _) = task.Loss(step);
            loss.backward();
            double forwardBackward = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            start = Stopwatch.GetTimestamp();
            optimizer.Step(step);
            double optimizerMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (step < warmup) continue;
            fb.Add(forwardBackward);
            opt.Add(optimizerMs);
        }
        double medianStep = Median(fb.Zip(opt, (a, b) => a + b));
        return (medianStep, Median(fb), Median(opt), s.Context * s.Batch / (medianStep / 1000));
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted[sorted.Length / 2];
    }
}
