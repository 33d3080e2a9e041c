using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The backward's hit sort (<see cref="RowHits"/>): the chunked sort, per chunk range (<see cref="KernelSettings.ChunkRangeSort"/>) or
/// per chunk, gives the serial sort's arrays (every row's hits in token order), whatever the thread count.
/// </summary>
public class RowHitsTests
{
    [Theory]
    [InlineData(301, 8, 16)]                                                      // odd token count
    [InlineData(64, 64, 256)]                                                     // the d = 512 layer's K and bucket count, few tokens
    [InlineData(1000, 5, 4)]                                                      // every row hit many times, K not a power of two
    public unsafe void The_chunked_sorts_give_the_serial_sorts_arrays(int n, int k, int buckets)
    {
        var rng = new Random(n + k);
        var rows = new int[n * k];
        for (int i = 0; i < rows.Length; i++)
            rows[i] = ((i % k) * buckets) + rng.Next(buckets);
        var weights = Enumerable.Range(0, n * k).Select(_ => (float)rng.NextDouble()).ToArray();
        int rowCount = k * buckets;
        fixed (float* w = weights)
        {
            using var serial = RowHits.Build(rows, rows.Length, k, w, rowCount, chunked: false);
            foreach (bool ranges in new[] { true, false })
                foreach (int threads in new[] { 1, 2 })
                {
                    RowHits sorted = null!;
                    nint wp = (nint)w;
                    int saved = TorchSharp.torch.get_num_threads();
                    TorchSharp.torch.set_num_threads(threads);                   // the kernels' worker count
                    try
                    {
                        KernelSettings.Current.With(s => s.ChunkRangeSort = ranges, () =>
                            sorted = RowHits.Build(rows, rows.Length, k, (float*)wp, rowCount, chunked: true));
                    }
                    finally
                    {
                        TorchSharp.torch.set_num_threads(saved);
                    }
                    using (sorted)
                    {
                        Assert.Equal(serial.TouchedCount, sorted.TouchedCount);
                        Assert.True(serial.Starts.AsSpan(0, rowCount + 1).SequenceEqual(sorted.Starts.AsSpan(0, rowCount + 1)), "starts");
                        Assert.True(serial.Tokens.AsSpan(0, n * k).SequenceEqual(sorted.Tokens.AsSpan(0, n * k)), "tokens");
                        Assert.True(serial.PairIndex.AsSpan(0, n * k).SequenceEqual(sorted.PairIndex.AsSpan(0, n * k)), "pairs");
                        Assert.True(serial.Weights.AsSpan(0, n * k).SequenceEqual(sorted.Weights.AsSpan(0, n * k)), "weights");
                    }
                }
        }
    }
}
