using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary><c>perf bandwidth</c>: the memory-bandwidth probe (large tensor copy and sum) that bounds decode and the optimizer.</summary>
internal sealed class BandwidthCommand : Command<PerfSettings>
{
    /// <summary>Copy bandwidth in GB/s counting bytes read plus written, from the last run in this process.</summary>
    public static double CopyGBps { get; private set; } = double.NaN;

    public override int Execute(CommandContext context, PerfSettings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        Measure(settings).Publish(settings.Output);
        return 0;
    }

    public static PerfTable Measure(PerfSettings settings)
    {
        const long floats = 128L << 20;                                         // 512 MB
        using var src = randn(floats);
        using var dst = empty(floats);
        int repeats = settings.Quick ? 3 : 7;
        var copy = Timing.Measure(() => dst.copy_(src), 1, repeats);
        var sum = Timing.Measure(() => { using var s = src.sum(); }, 1, repeats);
        double bytes = floats * 4.0;
        CopyGBps = 2 * bytes / (copy.Min * 1e6);
        var table = new PerfTable("bandwidth", "Memory bandwidth probe (512 MB fp32 tensors)", "operation", "best ms", "median ms", "GB/s (best)");
        table.AddRow("copy_ (read + write)", copy.Min, copy.Median, CopyGBps);
        table.AddRow("sum (read)", sum.Min, sum.Median, bytes / (sum.Min * 1e6));
        table.AddNote("GB/s counts bytes read plus bytes written; the copy figure is the bound used for decode and the optimizer");
        return table;
    }
}
