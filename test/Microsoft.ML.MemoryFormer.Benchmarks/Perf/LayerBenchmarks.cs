using BenchmarkDotNet.Attributes;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>BenchmarkDotNet micro-benchmarks: Memory Layer vs Linear, forward and forward + backward (see <see cref="LayerCase"/>).</summary>
public class LayerBenchmarks
{
    private LayerCase? layer;

    /// <summary>d, the layer width (in and out).</summary>
    [ParamsSource(nameof(Widths))]
    public int D { get; set; }

    /// <summary>N, the tokens per call.</summary>
    [ParamsSource(nameof(TokenCounts))]
    public int N { get; set; }

    /// <summary>The widths of the sweep (set by the command before the run).</summary>
    public static IEnumerable<int> Widths { get; set; } = [256, 512, 1024, 2048];

    /// <summary>The token counts of the sweep.</summary>
    public static IEnumerable<int> TokenCounts { get; set; } = [1, 64, 4096];

    /// <summary>torch threads for the run.</summary>
    public static int Threads { get; set; } = 2;

    /// <summary>Builds both layers and the input.</summary>
    [GlobalSetup]
    public void Setup()
    {
        TorchSharp.torch.set_num_threads(Threads);
        layer = new LayerCase(D, N);
    }

    /// <summary>Frees the layers.</summary>
    [GlobalCleanup]
    public void Cleanup() => layer?.Dispose();

    /// <summary>nn.Linear forward.</summary>
    [Benchmark]
    public void LinearForward() => layer!.LinearForward();

    /// <summary>Memory Layer forward (hash + gather + bias).</summary>
    [Benchmark]
    public void MemoryForward() => layer!.MemoryForward();

    /// <summary>nn.Linear forward + backward.</summary>
    [Benchmark]
    public void LinearForwardBackward() => layer!.LinearForwardBackward();

    /// <summary>Memory Layer forward + backward.</summary>
    [Benchmark]
    public void MemoryForwardBackward() => layer!.MemoryForwardBackward();
}
