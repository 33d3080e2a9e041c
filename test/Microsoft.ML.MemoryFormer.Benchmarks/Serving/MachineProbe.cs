using Microsoft.ML.MemoryFormer.Benchmarks.Perf;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Serving;

/// <summary>
/// The machine's speed at the moment of a run, printed beside its results: fp32 GEMM GFLOP/s (1024³ matmul) and copy
/// bandwidth (256 MB copy_, bytes read plus written). On a shared machine both say how loaded it was.
/// </summary>
internal static class MachineProbe
{
    /// <summary>Measures both figures (about a second).</summary>
    public static (double GemmGflops, double CopyGBps) Measure()
    {
        const int n = 1024;
        using var a = randn(n, n);
        using var b = randn(n, n);
        var gemm = Timing.Measure(() => { using var c = matmul(a, b); }, 2, 7);
        const long floats = 64L << 20;
        using var src = randn(floats);
        using var dst = empty(floats);
        var copy = Timing.Measure(() => dst.copy_(src), 1, 5);
        return (2.0 * n * n * n / (gemm.Min * 1e6), 2 * floats * 4.0 / (copy.Min * 1e6));
    }
}
