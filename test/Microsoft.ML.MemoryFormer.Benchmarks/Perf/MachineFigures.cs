using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// This machine's speed now, printed beside every ratio (machines of one kind run the dense GEMM at different
/// speeds, issue 16): fp32 GEMM GFLOP/s and the copy bandwidth of <see cref="BandwidthCommand"/>.
/// </summary>
internal static class MachineFigures
{
    /// <summary>fp32 GEMM throughput of this machine now: the best of 5 torch.mm 1024³ after a warm-up.</summary>
    public static double GemmGflops()
    {
        const int n = 1024;
        using var a = randn(n, n);
        using var b = randn(n, n);
        var sample = Timing.Measure(() => { using var c = a.mm(b); }, 1, 5);
        return 2.0 * n * n * n / (sample.Min * 1e6);
    }

    /// <summary>Both figures now: GEMM GFLOP/s and copy GB/s (read + write).</summary>
    public static (double GemmGflops, double CopyGBps) Figures(PerfSettings? settings = null)
    {
        BandwidthCommand.Measure(settings ?? new PerfSettings { Quick = true });
        return (GemmGflops(), BandwidthCommand.CopyGBps);
    }

    /// <summary>Measures both figures and returns the note that goes under a table (a quick bandwidth probe when no
    /// settings are given).</summary>
    public static string Measure(PerfSettings? settings = null)
    {
        var (gflops, _) = Figures(settings);
        return $"machine in the same run: GEMM {gflops:F1} GFLOP/s (fp32 1024³ torch.mm), copy bandwidth {BandwidthCommand.CopyGBps:F1} GB/s (read + write), " +
            $"load average {Timing.LoadAverage():F2} on {Environment.ProcessorCount} logical CPUs{(Timing.LoadAverage() > Environment.ProcessorCount * 1.5 ? " (machine LOADED by other work: ratios only)" : "")}";
    }
}
