using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console.Cli;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf optimizer</c>: one table AdamW step vs table size — the fused single pass, torch's AdamW, and the
/// bandwidth bound of one pass (28 bytes per parameter: p, g, m, v read; p, m, v written).
/// </summary>
internal sealed class OptimizerCommand : Command<PerfSettings>
{
    public override int Execute(CommandContext context, PerfSettings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        if (double.IsNaN(BandwidthCommand.CopyGBps)) BandwidthCommand.Measure(settings);
        Measure(settings).Publish(settings.Output);
        return 0;
    }

    public static PerfTable Measure(PerfSettings settings)
    {
        double bandwidth = BandwidthCommand.CopyGBps;
        var table = new PerfTable("optimizer", $"Table AdamW step vs size (bound: 28 B/param at the copy bandwidth {bandwidth:F1} GB/s)",
            "rows × h", "params (M)", "fused ms", "fused, bf16 moments ms", "torch AdamW ms", "bound ms", "fused ÷ bound", "torch ÷ fused");
        long[] rowCounts = settings.Quick ? [8192, 65536] : [8192, 16384, 65536, 131072];
        foreach (long rows in rowCounts)
        {
            const long width = 512;
            var (fused, bf16) = Fused(rows, width, settings.Quick);
            double torchMs = rows <= 65536 ? TorchStep(rows, width, settings.Quick) : double.NaN;
            double bound = 28.0 * rows * width / (bandwidth * 1e6);
            table.AddRow($"{rows} × {width}", rows * width / 1e6, fused, bf16, torchMs, bound, fused / bound, torchMs / fused);
        }
        table.AddNote("dense AdamW (every row updated), β=(0.9, 0.95), weight decay 0.1; gradients random and dense; fp32 and bf16-moment steps " +
            "timed interleaved (bf16 moments move 20 instead of 28 B/param); torch AdamW skipped above 33.5M parameters to save time");
        return table;
    }

    /// <summary>Median ms of the fused step with fp32 and with bf16 moments, timed alternately.</summary>
    private static (double Fp32, double Bf16) Fused(long rows, long width, bool quick)
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(randn(rows, width) * 0.02f);
        p.grad = randn(rows, width);
        using var fp32 = new FusedAdamW([p], beta2: 0.95, weightDecay: 0.1);
        using var bf16 = new FusedAdamW([p], beta2: 0.95, weightDecay: 0.1, bf16Moments: true);
        var medians = Timing.Interleave([() => fp32.Step(1e-3), () => bf16.Step(1e-3)], quick ? 3 : 9);
        return (medians[0], medians[1]);
    }

    private static double TorchStep(long rows, long width, bool quick)
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(randn(rows, width) * 0.02f);
        p.grad = randn(rows, width);
        int warmup = 2, repeats = quick ? 3 : 7;
        using var adam = TorchSharp.torch.optim.AdamW([p], lr: 1e-3, beta2: 0.95, weight_decay: 0.1);
        return Timing.Measure(() => adam.step(), warmup, repeats).Median;
    }
}
