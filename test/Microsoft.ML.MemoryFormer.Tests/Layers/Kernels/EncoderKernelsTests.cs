using Microsoft.ML.MemoryFormer.Layers.Kernels;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The fused encoder's SIMD per-token kernels (<see cref="EncoderKernels"/>) against the scalar ones of the decode
/// step: the same bits for RMSNorm, rotary and the bag sum, LayerNorm to float rounding.</summary>
public class EncoderKernelsTests
{
    private static float[] Random(int n, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() * 2) - 1) * scale).ToArray();
    }

    [Theory]
    [InlineData(128)]
    [InlineData(160)]
    [InlineData(13)]
    public unsafe void Norms_equal_the_scalar_kernels(int d)
    {
        var x = Random(d, d, 3f);
        var gain = Random(d, d + 1);
        var bias = Random(d, d + 2);
        var (expected, actual) = (new float[d], new float[d]);
        fixed (float* xp = x, g = gain, b = bias, e = expected, a = actual)
        {
            VectorKernels.RmsNorm(xp, g, d, 1e-6f, e);
            EncoderKernels.RmsNorm(xp, g, d, 1e-6f, a);
            Assert.Equal(expected, actual);
            VectorKernels.LayerNorm(xp, g, b, d, 1e-5f, e);
            EncoderKernels.LayerNorm(xp, g, b, d, 1e-5f, a);
        }
        for (int i = 0; i < d; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i])), $"LayerNorm element {i}: {expected[i]} vs {actual[i]}");
    }

    // Two rows' LayerNorms with their sum chains side by side: each row's bits as alone (n = 160 is the Memory Block's K·(τ+2) at d = 128;
    // 24 takes the 256-bit tail of the last pass; 12 is not a multiple of 8 and takes the single-row kernel).
    [Theory]
    [InlineData(160)]
    [InlineData(320)]
    [InlineData(24)]
    [InlineData(8)]
    [InlineData(12)]
    public unsafe void Paired_LayerNorm_gives_each_row_the_bits_of_LayerNorm(int n)
    {
        var (x0, x1) = (Random(n, n + 10, 3f), Random(n, n + 11, 0.01f));
        x1[0] = 1e6f;                                                            // a row far from the other's scale
        var (gain, bias) = (Random(n, n + 12), Random(n, n + 13));
        var (e0, e1, a0, a1) = (new float[n], new float[n], new float[n], new float[n]);
        fixed (float* p0 = x0, p1 = x1, g = gain, b = bias, pe0 = e0, pe1 = e1, pa0 = a0, pa1 = a1)
        {
            EncoderKernels.LayerNorm(p0, g, b, n, 1e-5f, pe0);
            EncoderKernels.LayerNorm(p1, g, b, n, 1e-5f, pe1);
            EncoderKernels.LayerNormPair(p0, p1, g, b, n, 1e-5f, pa0, pa1);
        }
        Assert.Equal(e0.Select(BitConverter.SingleToInt32Bits), a0.Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(e1.Select(BitConverter.SingleToInt32Bits), a1.Select(BitConverter.SingleToInt32Bits));
        Assert.NotEqual(e0, e1);
    }

    [Theory]
    [InlineData(4, 32, 32)]
    [InlineData(2, 40, 20)]
    [InlineData(3, 16, 8)]
    public unsafe void Rotary_equals_the_scalar_kernel_bit_for_bit(int heads, int headWidth, int rotaryDims)
    {
        var x = Random(heads * headWidth, 5, 2f);
        var (cos, sin) = (Random(rotaryDims, 6), Random(rotaryDims, 7));
        var expected = (float[])x.Clone();
        fixed (float* e = expected, a = x, c = cos, s = sin)
        {
            VectorKernels.Rotary(e, heads, headWidth, rotaryDims, c, s);
            EncoderKernels.Rotary(a, heads, headWidth, rotaryDims, c, s);
        }
        Assert.Equal(expected, x);
    }

    [Theory]
    [InlineData(128, 16)]
    [InlineData(160, 16)]
    [InlineData(48, 5)]
    [InlineData(40, 3)]
    [InlineData(512, 4)]
    public unsafe void Bag_sum_equals_the_row_kernel_bit_for_bit(int h, int count)
    {
        const int rows = 64;
        var table = Random(rows * h, h);
        var bias = Random(h, h + 1);
        var weights = Random(count, h + 2);
        var index = Enumerable.Range(0, count).Select(i => (i * 37 + 5) % rows).ToArray();
        var (expected, actual) = (new float[h], new float[h]);
        fixed (float* t = table, b = bias, w = weights, e = expected, a = actual)
        fixed (int* idx = index)
        {
            RowKernels.WeightedBagSum(t, h, idx, w, count, e, b);
            EncoderKernels.BagSum(t, h, idx, w, count, a, b);
        }
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData(128, 16)]
    [InlineData(256, 7)]
    [InlineData(160, 16)]                                                      // not a multiple of 128: three single walks
    public unsafe void Three_tables_in_one_walk_give_the_bits_of_one_walk_each(int h, int count)
    {
        const int rows = 64;
        var tables = Enumerable.Range(0, 3).Select(i => Random(rows * h, h + (10 * i), 2f)).ToArray();
        var biases = Enumerable.Range(0, 3).Select(i => Random(h, h + (10 * i) + 1)).ToArray();
        var weights = Random(count, h + 2);
        var index = Enumerable.Range(0, count).Select(i => (i * 29 + 3) % rows).ToArray();
        var (expected, actual) = (new float[3 * h], new float[3 * h]);
        fixed (float* t0 = tables[0], t1 = tables[1], t2 = tables[2], b0 = biases[0], b1 = biases[1], b2 = biases[2], w = weights, e = expected, a = actual)
        fixed (int* idx = index)
        {
            EncoderKernels.BagSum(t0, h, idx, w, count, e, b0);
            EncoderKernels.BagSum(t1, h, idx, w, count, e + h, b1);
            EncoderKernels.BagSum(t2, h, idx, w, count, e + (2 * h), b2);
            EncoderKernels.BagSum3(t0, t1, t2, h, idx, w, count, a, a + h, a + (2 * h), b0, b1, b2);
        }
        Assert.Contains(expected, v => v != 0f);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
    }

    [Theory]
    [InlineData(128, 16)]
    [InlineData(256, 5)]
    [InlineData(160, 16)]                                                      // not a multiple of 128: three single walks
    public unsafe void Three_bf16_tables_in_one_walk_give_the_bits_of_one_walk_each(int h, int count)
    {
        const int rows = 64;
        var tables = Enumerable.Range(0, 3).Select(i => Random(rows * h, h + (10 * i), 2f).Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray()).ToArray();
        var biases = Enumerable.Range(0, 3).Select(i => Random(h, h + (10 * i) + 1)).ToArray();
        var weights = Random(count, h + 2);
        var index = Enumerable.Range(0, count).Select(i => (i * 31 + 7) % rows).ToArray();
        var (expected, actual) = (new float[3 * h], new float[3 * h]);
        fixed (ushort* t0 = tables[0], t1 = tables[1], t2 = tables[2])
        fixed (float* b0 = biases[0], b1 = biases[1], b2 = biases[2], w = weights, e = expected, a = actual)
        fixed (int* idx = index)
        {
            EncoderKernels.BagSumBf16(t0, h, idx, w, count, e, b0);
            EncoderKernels.BagSumBf16(t1, h, idx, w, count, e + h, b1);
            EncoderKernels.BagSumBf16(t2, h, idx, w, count, e + (2 * h), b2);
            EncoderKernels.BagSum3Bf16(t0, t1, t2, h, idx, w, count, a, a + h, a + (2 * h), b0, b1, b2);
        }
        Assert.Contains(expected, v => v != 0f);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
    }
}
