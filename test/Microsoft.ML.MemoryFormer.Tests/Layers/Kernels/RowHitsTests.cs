using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The backward's hit sort (<see cref="RowHits"/>): the chunked sorts (each chunk's hits on its own, chunks in parallel; staged
/// chunk-major first, <see cref="KernelSettings.StagedHitSort"/>, or walked down each chunk's column) give the general counting sort's
/// arrays element for element, and those arrays are right: each row's hits in token order with their pair index and weight.
/// </summary>
public class RowHitsTests
{
    [Theory]
    [InlineData(2048, 16, 4)]                                             // K·4N = 2^17: split into ranges across threads
    [InlineData(4096, 64, 8)]                                             // perf layer's d = 512 shape
    [InlineData(3001, 13, 5)]                                             // ranges of uneven widths, odd N
    [InlineData(5, 3, 2)]                                                 // inline (one range), rows left untouched
    public unsafe void The_chunked_sorts_give_the_general_sorts_arrays(int n, int k, int bits)
    {
        int blockRows = 1 << bits, rowCount = k * blockRows;
        var random = new Random(n + k);
        var rows = new int[n * k];
        var weights = new float[n * k];
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < k; c++)
            {
                // Skewed rows (a few hot buckets), as a trained hash gives.
                int bucket = random.Next(4) == 0 ? random.Next(blockRows) : random.Next(Math.Min(3, blockRows));
                rows[(i * k) + c] = (c * blockRows) + bucket;
                weights[(i * k) + c] = (float)random.NextDouble() - 0.5f;
            }
        }
        fixed (float* w = weights)
        {
            using var general = RowHits.Build(rows, n * k, k, w, rowCount, chunked: false);
            nint address = (nint)w;
            RowHits staged = null!, columns = null!, alone = null!;
            KernelSettings.Current.With(s => s.StagedHitSort = true, () => staged = RowHits.Build(rows, n * k, k, (float*)address, rowCount, chunked: true));
            KernelSettings.Current.With(s => s.StagedHitSort = false, () => columns = RowHits.Build(rows, n * k, k, (float*)address, rowCount, chunked: true));
            int threads = TorchSharp.torch.get_num_threads();
            TorchSharp.torch.set_num_threads(1);                          // one range: the staged sort on the calling thread alone
            try { alone = RowHits.Build(rows, n * k, k, w, rowCount, chunked: true); }
            finally { TorchSharp.torch.set_num_threads(threads); }
            using var stagedSort = staged;
            using var columnSort = columns;
            using var aloneSort = alone;
            foreach (var sorted in new[] { staged, columns, alone })
            {
                Assert.Equal(general.TouchedCount, sorted.TouchedCount);
                Assert.Equal(general.Starts.AsSpan(0, rowCount + 1).ToArray(), sorted.Starts.AsSpan(0, rowCount + 1).ToArray());
                Assert.Equal(general.Tokens.AsSpan(0, n * k).ToArray(), sorted.Tokens.AsSpan(0, n * k).ToArray());
                Assert.Equal(general.PairIndex.AsSpan(0, n * k).ToArray(), sorted.PairIndex.AsSpan(0, n * k).ToArray());
                Assert.Equal(general.Weights.AsSpan(0, n * k).ToArray().Select(BitConverter.SingleToInt32Bits),
                    sorted.Weights.AsSpan(0, n * k).ToArray().Select(BitConverter.SingleToInt32Bits));
            }
            for (int r = 0; r < rowCount; r++)
            {
                for (int s = general.Starts[r]; s < general.Starts[r + 1]; s++)
                {
                    int pair = general.PairIndex[s];
                    Assert.Equal(r, rows[pair]);
                    Assert.Equal(pair / k, general.Tokens[s]);
                    Assert.Equal(weights[pair], general.Weights[s]);
                    if (s > general.Starts[r])
                        Assert.True(general.Tokens[s - 1] < general.Tokens[s], $"row {r}: tokens out of order");
                }
            }
            Assert.Equal(n * k, general.Starts[rowCount]);
        }
    }
}
