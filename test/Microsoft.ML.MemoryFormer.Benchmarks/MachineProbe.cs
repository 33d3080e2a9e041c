using Microsoft.ML.MemoryFormer.Benchmarks.Perf;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>How fast this machine is right now, to print beside benchmark numbers taken on a shared machine: fp32
/// GEMM throughput (best of 5 torch.mm 1024³ after a warm-up) and copy bandwidth (the <c>perf bandwidth</c> probe).</summary>
internal static class MachineProbe
{
    /// <summary>One line: GEMM GFLOP/s, copy GB/s, threads and the 1-minute load average.</summary>
    public static string Describe()
    {
        const int n = 1024;
        using var a = randn(n, n);
        using var b = randn(n, n);
        double gflops = 2.0 * n * n * n / (Timing.Measure(() => { using var c = a.mm(b); }, 1, 5).Min * 1e6);
        BandwidthCommand.Measure(new PerfSettings { Quick = true });
        string load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "unknown";
        return FormattableString.Invariant(
            $"machine in the same run: GEMM {gflops:F1} GFLOP/s (fp32 1024³ torch.mm), copy bandwidth {BandwidthCommand.CopyGBps:F1} GB/s (read + write), {get_num_threads()} torch threads, {Environment.ProcessorCount} cores, load average {load}");
    }
}
