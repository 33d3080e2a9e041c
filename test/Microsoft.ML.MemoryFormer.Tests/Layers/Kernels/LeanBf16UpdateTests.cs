using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// <see cref="Bf16Moments"/>' lean 512-bit loop (<c>KernelSettings.LeanBf16Update</c>: packed narrowing, widening loads, a vector
/// index counter and folded hash steps) against the plain one, bit for bit: parameters and both bf16 moments, on rows of ordinary,
/// zero, tiny, huge and mixed blocks, element indices that wrap past 2³², several salts, steps and widths with scalar tails.
/// </summary>
public unsafe class LeanBf16UpdateTests
{
    /// <summary>One value of a block's regime: ordinary, zero, tiny (down to subnormal), huge, or any of them per element.</summary>
    private static float Value(Random random, int regime, float scale)
    {
        if (regime == 4)
            regime = random.Next(4);
        float sign = random.Next(2) == 0 ? 1f : -1f;
        return regime switch
        {
            0 => sign * scale * (float)Math.Exp(random.NextDouble() * 6 - 3),
            1 => random.Next(2) == 0 ? 0f : -0f,
            2 => sign * (float)Math.Pow(2, -60 - random.Next(90)),
            _ => sign * (float)Math.Pow(2, 20 + random.Next(40)),
        };
    }

    private static float[] Row(Random random, int width, float scale, bool nonNegative = false)
    {
        var row = new float[width];
        for (int b = 0; b < width; b += 16)
        {
            int regime = random.Next(10) switch { < 5 => 0, 5 => 1, 6 => 2, 7 => 3, _ => 4 };
            for (int i = b; i < Math.Min(width, b + 16); i++)
                row[i] = nonNegative ? Math.Abs(Value(random, regime, scale)) : Value(random, regime, scale);
        }
        return row;
    }

    private static ushort[] Bf16(float[] row) => row.Select(x => (ushort)(BitConverter.SingleToUInt32Bits(x) >> 16)).ToArray();

    [Fact]
    public void Lean_loop_gives_the_plain_loops_bits()
    {
        var random = new Random(31);
        int rows = 0;
        foreach (int width in new[] { 512, 640, 32 * 7 + 19 })
        {
            foreach (long index in new[] { 0L, 4096L * 513, uint.MaxValue - 40L, (5L << 32) + 77 })
            {
                foreach (long step in new long[] { 1, 3, 200 })
                {
                    var c = new AdamWKernel.Coefficients(3e-3, 0.9, step == 3 ? 0.95 : 0.999, 1e-8, 0.1, step, step == 200 ? 0.37 : 1.0);
                    uint salt = Bf16Moments.Salt(step, random.Next(40));
                    var p = Row(random, width, 0.05f);
                    var g = Row(random, width, 1e-3f);
                    var m = Bf16(Row(random, width, 1e-3f));
                    var v = Bf16(Row(random, width, 1e-6f, nonNegative: true));
                    (uint[] P, ushort[] M, ushort[] V) Run(bool lean)
                    {
                        var (pp, mm, vv) = ((float[])p.Clone(), (ushort[])m.Clone(), (ushort[])v.Clone());
                        KernelSettings.Current.With(k => k.LeanBf16Update = lean, () =>
                        {
                            fixed (float* p0 = pp, g0 = g)
                            fixed (ushort* m0 = mm, v0 = vv)
                                Bf16Moments.UpdateRow(p0, g0, m0, v0, width, c, index, salt);
                        });
                        return (pp.Select(BitConverter.SingleToUInt32Bits).ToArray(), mm, vv);
                    }
                    var plain = Run(false);
                    var lean = Run(true);
                    Assert.Equal(plain.P, lean.P);
                    Assert.Equal(plain.M, lean.M);
                    Assert.Equal(plain.V, lean.V);
                    Assert.NotEqual(m, lean.M);                                                  // the step did move the moments
                    rows++;
                }
            }
        }
        Assert.Equal(36, rows);
    }
}
