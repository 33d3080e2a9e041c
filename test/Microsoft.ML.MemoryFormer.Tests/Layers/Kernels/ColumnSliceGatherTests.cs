using Microsoft.ML.MemoryFormer.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The table-major gather of the fused encoder (<see cref="ColumnSliceGather"/>) against the token-major
/// <see cref="RowKernels.WeightedBagSum"/>: the same FMA chain per output value, so the same bits.</summary>
public class ColumnSliceGatherTests
{
    /// <summary>Random chunked rows (chunk c reads its own block of 2^bits rows), weights, a table and a bias.</summary>
    private static (int[] Rows, float[] Weights, float[] Table, float[] Bias) Inputs(int n, int k, int bits, int width, int seed)
    {
        var random = new Random(seed);
        int perChunk = 1 << bits;
        var rows = new int[n * k];
        var weights = new float[n * k];
        for (int i = 0; i < n * k; i++)
        {
            rows[i] = ((i % k) * perChunk) + random.Next(perChunk);
            weights[i] = (float)(random.NextDouble() * 2 - 1);
        }
        var table = new float[(long)k * perChunk * width];
        for (long i = 0; i < table.LongLength; i++)
            table[i] = (float)(random.NextDouble() * 2 - 1);
        var bias = Enumerable.Range(0, width).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        return (rows, weights, table, bias);
    }

    // (tokens, chunks, bits, width): a token tail (n % 4 ≠ 0), one chunk group, and 13 bits where every chunk is its own
    // group (8,192 rows × 128 bytes exceed the slice budget), so the partial sums go through the scratch.
    [Theory]
    [InlineData(7, 4, 6, 32)]
    [InlineData(203, 16, 8, 160)]
    [InlineData(65, 3, 13, 64)]
    public unsafe void Equals_the_token_major_bag_sum_bit_for_bit_with_and_without_the_residual(int n, int k, int bits, int width)
    {
        var (rows, weights, table, bias) = Inputs(n, k, bits, width, seed: n);
        var residual = Enumerable.Range(0, n * width).Select(i => (float)Math.Sin(i)).ToArray();
        var expected = new float[n * width];
        var expectedResidual = (float[])residual.Clone();
        var sum = new float[width];
        fixed (int* r = rows)
        fixed (float* w = weights, t = table, b = bias, e = expected, er = expectedResidual, s = sum)
        {
            for (int i = 0; i < n; i++)
            {
                RowKernels.WeightedBagSum(t, width, r + (i * k), w + (i * k), k, e + (i * width), b);
                RowKernels.WeightedBagSum(t, width, r + (i * k), w + (i * k), k, s, b);
                RowKernels.Add(s, er + (i * width), width);
            }
        }
        var actual = new float[n * width];
        var actualResidual = (float[])residual.Clone();
        var partial = new float[n * width];
        fixed (int* r = rows)
        fixed (float* w = weights, t = table, b = bias, a = actual, ar = actualResidual, p = partial)
        {
            ColumnSliceGather.Run(
            [
                new((nint)t, (nint)b, (nint)a, (nint)a, width, false),
                new((nint)t, (nint)b, (nint)ar, (nint)p, width, true),
            ], r, w, n, k, 1 << bits);
        }
        Assert.Equal(expected, actual);
        Assert.Equal(expectedResidual, actualResidual);
    }

    [Fact]
    public unsafe void One_and_two_threads_give_the_same_bytes()
    {
        const int n = 301, k = 8, bits = 8, width = 96;
        var (rows, weights, table, bias) = Inputs(n, k, bits, width, seed: 3);
        float[] Gather(int threads)
        {
            var output = new float[n * width];
            int previous = get_num_threads();
            try
            {
                set_num_threads(threads);
                fixed (int* r = rows)
                fixed (float* w = weights, t = table, b = bias, o = output)
                    ColumnSliceGather.Run([new((nint)t, (nint)b, (nint)o, (nint)o, width, false)], r, w, n, k, 1 << bits);
            }
            finally { set_num_threads(previous); }
            return output;
        }
        Assert.Equal(Gather(1), Gather(2));
    }

    [Fact]
    public unsafe void A_width_off_the_slice_or_a_residual_without_scratch_is_refused_by_name()
    {
        var buffer = new float[64];
        var rows = new int[1];
        fixed (float* f = buffer)
        fixed (int* r = rows)
        {
            nint p = (nint)f, ra = (nint)r;
            var e = Assert.Throws<ArgumentException>(() => ColumnSliceGather.Run([new(p, p, p, p, 40, false)], (int*)ra, (float*)p, 1, 1, 1));
            Assert.Contains("multiple of 32", e.Message);
            e = Assert.Throws<ArgumentException>(() => ColumnSliceGather.Run([new(p, p, p, p, 32, true)], (int*)ra, (float*)p, 1, 1, 1));
            Assert.Contains("separate partial buffer", e.Message);
        }
    }
}
