using System.Diagnostics;
using System.Globalization;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>The machine's speed at the time of a run, printed beside timings taken on a shared machine.</summary>
internal static class MachineProbe
{
    /// <summary>"GEMM … GFLOP/s, copy … GB/s (read + write), load …", measured now.</summary>
    public static string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"GEMM {GemmGflops():F1} GFLOP/s, copy {CopyGBps():F1} GB/s (read + write), load average {LoadAverage()}");

    /// <summary>fp32 GEMM throughput now: the best of 5 torch.mm 1024³ after a warm-up.</summary>
    public static double GemmGflops()
    {
        const int n = 1024;
        using var a = randn(n, n);
        using var b = randn(n, n);
        var best = Enumerable.Range(0, 6).Select(_ => { var c = Stopwatch.StartNew(); using var r = a.mm(b); return c.Elapsed.TotalSeconds; }).Skip(1).Min();
        return 2.0 * n * n * n / best / 1e9;
    }

    /// <summary>Copy bandwidth now (read + write) over 256 MB fp32, the best of 5.</summary>
    public static double CopyGBps()
    {
        using var a = randn(64L << 20);
        using var b = empty_like(a);
        var best = Enumerable.Range(0, 6).Select(_ => { var c = Stopwatch.StartNew(); b.copy_(a); return c.Elapsed.TotalSeconds; }).Skip(1).Min();
        return 2.0 * a.numel() * 4 / best / 1e9;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
}
