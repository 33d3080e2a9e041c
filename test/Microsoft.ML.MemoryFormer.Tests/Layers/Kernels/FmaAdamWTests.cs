using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The AdamW row updates with their square root and divisions on the FMA ports (<c>KernelSettings.AdamWFmaSqrt</c>,
/// <c>AdamWFmaDivide</c>, <see cref="CorrectlyRounded512"/>) against the divider, bit for bit: bf16 moments
/// (<see cref="Bf16Moments"/>) and fp32 (<see cref="AdamWKernel"/>), on rows whose 16-element blocks are ordinary, zero, tiny,
/// huge or mixed, at several steps, ε and gradient scales.
/// </summary>
public unsafe class FmaAdamWTests
{
    private const int Width = 16 * 40 + 7;                                     // 40 vectors and a scalar tail

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

    private static float[] Row(Random random, float scale, bool nonNegative = false)
    {
        var row = new float[Width];
        for (int b = 0; b < Width; b += 16)
        {
            int regime = random.Next(10) switch { < 5 => 0, 5 => 1, 6 => 2, 7 => 3, _ => 4 };
            for (int i = b; i < Math.Min(Width, b + 16); i++)
                row[i] = nonNegative ? Math.Abs(Value(random, regime, scale)) : Value(random, regime, scale);
        }
        return row;
    }

    private static ushort[] Bf16(float[] row) => row.Select(x => (ushort)(BitConverter.SingleToUInt32Bits(x) >> 16)).ToArray();

    private static IEnumerable<AdamWKernel.Coefficients> Steps() =>
        from step in new long[] { 1, 3, 200 }
        from eps in new[] { 1e-8, 0.0 }
        from gradScale in new[] { 1.0, 0.37 }
        select new AdamWKernel.Coefficients(1e-3, 0.9, step == 3 ? 0.95 : 0.999, eps, 0.1, step, gradScale);

    private static void With(bool sqrt, bool divide, Action body) =>
        KernelSettings.Current.With(k => { k.AdamWFmaSqrt = sqrt; k.AdamWFmaDivide = divide; }, body);

    [Fact]
    public void Bf16_moment_update_is_the_same_bits_with_the_divider_or_the_FMA_ports()
    {
        var random = new Random(21);
        int cases = 0;
        foreach (var c in Steps())
        {
            for (int trial = 0; trial < 4; trial++)
            {
                var p = Row(random, 0.05f);
                var g = Row(random, 1e-3f);
                var m = Bf16(Row(random, 1e-3f));
                var v = Bf16(Row(random, 1e-6f, nonNegative: true));
                (float[] P, ushort[] M, ushort[] V) Run(bool sqrt, bool divide)
                {
                    var (pp, mm, vv) = ((float[])p.Clone(), (ushort[])m.Clone(), (ushort[])v.Clone());
                    With(sqrt, divide, () =>
                    {
                        fixed (float* pp0 = pp, g0 = g)
                        fixed (ushort* m0 = mm, v0 = vv)
                            Bf16Moments.UpdateRow(pp0, g0, m0, v0, Width, c, 1000L * trial, 77);
                    });
                    return (pp, mm, vv);
                }
                var reference = Run(false, false);
                foreach (var (sqrt, divide) in new[] { (true, true), (true, false), (false, true) })
                {
                    var fma = Run(sqrt, divide);
                    Assert.Equal(Bits(reference.P), Bits(fma.P));
                    Assert.Equal(reference.M, fma.M);
                    Assert.Equal(reference.V, fma.V);
                }
                cases++;
            }
        }
        Assert.Equal(48, cases);
    }

    [Fact]
    public void Fp32_update_is_the_same_bits_with_the_divider_or_the_FMA_ports()
    {
        var random = new Random(22);
        foreach (var c in Steps())
        {
            for (int trial = 0; trial < 4; trial++)
            {
                var p = Row(random, 0.05f);
                var g = Row(random, 1e-3f);
                var m = Row(random, 1e-3f);
                var v = Row(random, 1e-6f, nonNegative: true);
                (float[] P, float[] M, float[] V) Run(bool sqrt, bool divide)
                {
                    var (pp, mm, vv) = ((float[])p.Clone(), (float[])m.Clone(), (float[])v.Clone());
                    With(sqrt, divide, () =>
                    {
                        fixed (float* pp0 = pp, g0 = g, m0 = mm, v0 = vv)
                            AdamWKernel.UpdateRow(pp0, g0, m0, v0, Width, c);
                    });
                    return (pp, mm, vv);
                }
                var reference = Run(false, false);
                foreach (var (sqrt, divide) in new[] { (true, true), (true, false), (false, true) })
                {
                    var fma = Run(sqrt, divide);
                    Assert.Equal(Bits(reference.P), Bits(fma.P));
                    Assert.Equal(Bits(reference.M), Bits(fma.M));
                    Assert.Equal(Bits(reference.V), Bits(fma.V));
                }
            }
        }
    }

    [Fact]
    public void Ordinary_rows_mostly_stay_inside_the_proven_domain()
    {
        // The switch only pays if typical moments and steps take the fast path: check the domain test on an ordinary row.
        var random = new Random(23);
        int inside = 0, vectors = 0;
        for (int r = 0; r < 64; r++)
        {
            for (int b = 0; b + 16 <= Width; b += 16, vectors++)
            {
                var v = System.Runtime.Intrinsics.Vector512.Create(Enumerable.Range(0, 16).Select(_ => Math.Abs(Value(random, 0, 1e-6f))).ToArray());
                var a = System.Runtime.Intrinsics.Vector512.Create(Enumerable.Range(0, 16).Select(_ => Value(random, 0, 1e-6f)).ToArray());
                if (CorrectlyRounded512.OutsideAdamWDomain(v, a) == System.Runtime.Intrinsics.Vector512<uint>.Zero)
                    inside++;
            }
        }
        Assert.Equal(vectors, inside);
        Assert.True(CorrectlyRounded512.AdamWScalarsFit(1f / MathF.Sqrt(1 - 0.999f), 1e-8f));
        Assert.False(CorrectlyRounded512.AdamWScalarsFit(1f, -1e-8f));
    }

    private static uint[] Bits(float[] x) => x.Select(BitConverter.SingleToUInt32Bits).ToArray();
}
