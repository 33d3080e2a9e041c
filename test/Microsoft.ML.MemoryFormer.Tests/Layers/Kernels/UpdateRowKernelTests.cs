using Microsoft.ML.MemoryFormer.Layers.Kernels;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The AdamW row kernels (<see cref="AdamWKernel.UpdateRow"/>, <see cref="Bf16Moments.UpdateRow"/>): a whole row through
/// the 512-bit, 256-bit and scalar loops gives the bits of the same elements updated one at a time (the scalar loop), so
/// the vector width a machine has cannot change a trained model.
/// </summary>
public unsafe class UpdateRowKernelTests
{
    private static readonly AdamWKernel.Coefficients Step3 = new(lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3, gradScale: 0.37);

    private static float[] Random(Random rng, int n, float scale, bool positive = false) =>
        Enumerable.Range(0, n).Select(_ => (float)(positive ? rng.NextDouble() : rng.NextDouble() - 0.5) * scale).ToArray();

    [Theory]
    [InlineData(77)]     // 64 by the 512-bit loop, none by the 256-bit one, 13 scalar
    [InlineData(93)]     // 64 + 16 (the bf16 256-bit loop) + 13
    [InlineData(512)]
    public void Fp32_row_update_is_the_bits_of_the_scalar_update(int n)
    {
        var rng = new Random(n);
        float[] p = Random(rng, n, 0.1f), g = Random(rng, n, 1f), m = Random(rng, n, 0.01f), v = Random(rng, n, 1e-4f, positive: true);
        float[] p0 = (float[])p.Clone(), p1 = (float[])p.Clone(), m1 = (float[])m.Clone(), v1 = (float[])v.Clone();
        fixed (float* pp = p, gp = g, mp = m, vp = v, pp1 = p1, mp1 = m1, vp1 = v1)
        {
            AdamWKernel.UpdateRow(pp, gp, mp, vp, n, Step3);
            for (int i = 0; i < n; i++)
                AdamWKernel.UpdateRow(pp1 + i, gp + i, mp1 + i, vp1 + i, 1, Step3);
        }
        Assert.Equal(p1, p);
        Assert.Equal(m1, m);
        Assert.Equal(v1, v);
        Assert.NotEqual(p0, p);                                              // the row moved
    }

    [Theory]
    [InlineData(77, 0L)]
    [InlineData(93, 4096L)]   // an element index inside a larger table: the rounding noise follows the index
    [InlineData(512, 1000L)]
    public void Bf16_row_update_is_the_bits_of_the_scalar_update(int n, long index)
    {
        var rng = new Random(n);
        float[] p = Random(rng, n, 0.1f), g = Random(rng, n, 1f);
        ushort[] m = Random(rng, n, 0.01f).Select(ToBf16).ToArray(), v = Random(rng, n, 1e-4f, positive: true).Select(ToBf16).ToArray();
        float[] p0 = (float[])p.Clone(), p1 = (float[])p.Clone();
        ushort[] m1 = (ushort[])m.Clone(), v1 = (ushort[])v.Clone();
        uint salt = Bf16Moments.Salt(3, 1);
        fixed (float* pp = p, gp = g, pp1 = p1)
        fixed (ushort* mp = m, vp = v, mp1 = m1, vp1 = v1)
        {
            Bf16Moments.UpdateRow(pp, gp, mp, vp, n, Step3, index, salt);
            for (int i = 0; i < n; i++)
                Bf16Moments.UpdateRow(pp1 + i, gp + i, mp1 + i, vp1 + i, 1, Step3, index + i, salt);
        }
        Assert.Equal(p1, p);
        Assert.Equal(m1, m);
        Assert.Equal(v1, v);
        Assert.NotEqual(p0, p);                                              // the row moved
    }

    private static ushort ToBf16(float x) => (ushort)(BitConverter.SingleToUInt32Bits(x) >> 16);
}
