using System.Numerics;
using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// <see cref="CorrectlyRounded512"/> against the divider, bit for bit: the square root and the reciprocal exhaustively (every float
/// of their domains), the division by Markstein's theorem plus exhaustive divisors × structured dividends, constructed near-midpoint
/// quotients and 10⁹ random pairs. Vectorised and split over the cores (a few seconds each).
/// </summary>
public class CorrectlyRounded512Tests
{
    private const int Chunks = 256;

    /// <summary>Runs <paramref name="body"/> over [<paramref name="first"/>, <paramref name="end"/>) bit patterns in 16-lane vectors;
    /// the body returns how many lanes differ; returns the total and one failing start.</summary>
    private static (long Failures, long Example) Sweep(long first, long end, Func<Vector512<uint>, int> body)
    {
        long failures = 0, example = -1;
        long span = end - first, per = ((span / Chunks) + 15) & ~15L;
        Parallel.For(0, Chunks, c =>
        {
            long start = first + (c * per), stop = Math.Min(end, start + per), local = 0, bad = -1;
            var lanes = Vector512.Create(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u);
            for (long s = start; s + 16 <= stop; s += 16)
            {
                int n = body(Vector512.Create((uint)s) + lanes);
                if (n != 0)
                {
                    local += n;
                    bad = s;
                }
            }
            if (local != 0)
            {
                Interlocked.Add(ref failures, local);
                Interlocked.Exchange(ref example, bad);
            }
        });
        return (failures, example);
    }

    private static int Differ(Vector512<float> x, Vector512<float> y) =>
        BitOperations.PopCount(Vector512.ExtractMostSignificantBits(~Vector512.Equals(x.AsUInt32(), y.AsUInt32())));

    [Fact]
    public void Fast_square_root_equals_vsqrtps_for_every_float_of_its_domain()
    {
        if (!CorrectlyRounded512.IsSupported)
            return;
        var (failures, example) = Sweep(27u << 23, 0x7F800000, bits =>      // [2⁻¹⁰⁰, +∞)
        {
            var v = bits.AsSingle();
            return Differ(CorrectlyRounded512.SqrtFast(v), Vector512.Sqrt(v));
        });
        Assert.True(failures == 0, $"{failures} square roots differ, e.g. near bits 0x{example:X8}");
    }

    [Fact]
    public void Square_root_with_its_fallback_equals_vsqrtps_for_every_non_negative_float_infinity_and_nan()
    {
        if (!CorrectlyRounded512.IsSupported)
            return;
        var outside = CorrectlyRounded512.OutsideSqrtDomain(Vector512.Create(0f, float.Epsilon, 1e-40f, float.PositiveInfinity,
            float.NaN, -1f, -0f, 1.1754942E-38f, BitConverter.UInt32BitsToSingle((27u << 23) - 1), 1f, float.MaxValue, 3f, 4f, 5f, 6f, 7f));
        Assert.Equal(0b0000_0001_1111_1111u, (uint)Vector512.ExtractMostSignificantBits(outside));
        var (failures, example) = Sweep(0, 0x80000000L, bits =>
        {
            var v = bits.AsSingle();
            var root = CorrectlyRounded512.Sqrt(v);
            var nan = ~Vector512.Equals(v, v);                                  // NaN maps to a NaN
            return Differ(Vector512.ConditionalSelect(nan, Vector512.Sqrt(v), root), Vector512.Sqrt(v))
                + BitOperations.PopCount(Vector512.ExtractMostSignificantBits(nan & Vector512.Equals(root, root)));
        });
        Assert.True(failures == 0, $"{failures} square roots differ, e.g. near bits 0x{example:X8}");
    }

    [Fact]
    public void Reciprocal_equals_one_divided_by_b_for_every_b_of_its_domain()
    {
        if (!CorrectlyRounded512.IsSupported)
            return;
        var one = Vector512<float>.One;
        var (failures, example) = Sweep(2u << 23, 253u << 23, bits =>            // [2⁻¹²⁵, 2¹²⁶)
        {
            var b = bits.AsSingle();
            return Differ(CorrectlyRounded512.Reciprocal(b), one / b);
        });
        Assert.True(failures == 0, $"{failures} reciprocals differ, e.g. near bits 0x{example:X8}");
    }

    [Fact]
    public void Division_equals_vdivps_for_every_divisor_significand_and_structured_dividends()
    {
        if (!CorrectlyRounded512.IsSupported)
            return;
        // Every significand of b at two exponents × dividends: 1, the largest significand, powers of two, and random significands
        // at exponents spread over the domain, both signs (Markstein's step makes the path scale-invariant inside the domain).
        var random = new Random(3);
        var dividends = new List<float> { 1f, -1f, 1.99999988f, -1.99999988f, 0.5f, 3f, 2.5e-18f, 8e17f };
        for (int i = 0; i < 24; i++)
            dividends.Add(BitConverter.UInt32BitsToSingle((uint)((random.Next(2) << 31) | ((70 + random.Next(114)) << 23) | random.Next(1 << 23))));
        foreach (uint exponent in new[] { 127u, 100u })
        {
            var (failures, example) = Sweep(exponent << 23, (exponent + 1) << 23, bits =>
            {
                var b = bits.AsSingle();
                var y = CorrectlyRounded512.Reciprocal(b);
                int n = 0;
                foreach (float d in dividends)
                {
                    var a = Vector512.Create(d);
                    n += Differ(CorrectlyRounded512.DivideFast(a, b, y), a / b);
                }
                return n;
            });
            Assert.True(failures == 0, $"{failures} quotients differ, e.g. near divisor bits 0x{example:X8}");
        }
    }

    [Fact]
    public void Division_rounds_quotients_next_to_a_midpoint_as_vdivps()
    {
        if (!CorrectlyRounded512.IsSupported)
            return;
        // The hard cases: a/b = m ± t·2⁻²⁴ ulp for a midpoint m between two floats and small t. With M the midpoint's 25-bit odd
        // significand, choose the divisor's B ≡ t·M⁻¹ (mod 2ᵏ), so that P = M·B ≡ t: a = (P − t)/2ᵏ has 24 bits and a/b misses m
        // by t/(2ᵏ B) of m's scale. 2²² such (a, b), t in ±1..±8, then a one ulp either way.
        var random = new Random(7);
        var cases = new List<(float A, float B)>();
        while (cases.Count < 1 << 22)
        {
            uint m = (uint)random.Next(1 << 24) | (1u << 24) | 1u;              // odd, in [2²⁴, 2²⁵)
            uint inverse = m;
            for (int i = 0; i < 5; i++)
                inverse *= 2 - (m * inverse);                                  // m⁻¹ mod 2³²
            int t = random.Next(1, 9) * (random.Next(2) == 0 ? 1 : -1);
            int k = random.Next(24, 26);
            ulong b = (inverse * (uint)t) & ((1u << k) - 1);
            ulong product = m * b;
            bool shape = b >= 1u << 23 && b < 1u << 24 && (k == 24 ? product < 1UL << 48 : product >= 1UL << 48);
            if (!shape)
                continue;
            ulong a = (ulong)((long)product - t) >> k;                             // 24 bits
            cases.Add(((float)(a * Math.Pow(2, k - 47)), (float)(b * Math.Pow(2, -23))));
        }
        var aa = cases.Select(c => c.A).ToArray();
        var bb = cases.Select(c => c.B).ToArray();
        var (failures, example) = Sweep(0, cases.Count, bits =>
        {
            int i = (int)bits.GetElement(0);
            var a = Vector512.Create(aa.AsSpan(i, 16));
            var b = Vector512.Create(bb.AsSpan(i, 16));
            var y = CorrectlyRounded512.Reciprocal(b);
            int n = 0;
            foreach (var da in new[] { a, Next(a, 1), Next(a, -1) })
                n += Differ(CorrectlyRounded512.DivideFast(da, b, y), da / b);
            return n;
        });
        Assert.True(failures == 0, $"{failures} near-midpoint quotients differ, e.g. at case {example}");
    }

    [Fact]
    public void Division_with_its_fallback_equals_vdivps_on_random_pairs_and_special_values()
    {
        if (!CorrectlyRounded512.IsSupported)
            return;
        var specials = new[] { 0f, -0f, float.Epsilon, -float.Epsilon, 1e-40f, float.MaxValue, float.PositiveInfinity, float.NegativeInfinity,
            float.NaN, 1f, -3f, MathF.ScaleB(1f, -60), MathF.ScaleB(1f, 60), MathF.ScaleB(1f, -64), MathF.ScaleB(1f, 64), 1e-8f };
        foreach (float sa in specials)
        {
            foreach (float sb in specials)
            {
                var a = Vector512.Create(sa);
                var b = Vector512.Create(sb);
                var q = CorrectlyRounded512.Divide(a, b);
                Assert.True(Differ(q, a / b) == 0 || (float.IsNaN(sa / sb) && float.IsNaN(q.GetElement(0))), $"{sa} / {sb}");
            }
        }
        // 10⁹ random pairs: every sign, exponent and significand, so most lanes take the fallback; then 10⁹ inside the domain.
        foreach (bool inside in new[] { false, true })
        {
            var (failures, example) = Sweep(0, 1_000_000_000L, bits =>
            {
                var x = Hash(bits);
                var z = Hash(x ^ Vector512.Create(0x9E3779B9u));
                if (inside)
                {
                    // exponents from sums of masked bits: |a| in [2⁻⁶⁰, 2⁵⁷), b in [2⁻⁶⁴, 2⁵³); sign and significand random
                    var spread = ((x >> 1) & Vector512.Create(63u)) + ((z >> 1) & Vector512.Create(31u)) + ((x >> 9) & Vector512.Create(15u)) + ((z >> 9) & Vector512.Create(7u));
                    x = (x & Vector512.Create(0x807FFFFFu)) | ((Vector512.Create(67u) + spread) << 23);
                    z = (z & Vector512.Create(0x007FFFFFu)) | ((Vector512.Create(63u) + (Vector512.Create(116u) - spread)) << 23);
                }
                var a = x.AsSingle();
                var b = z.AsSingle();
                var q = CorrectlyRounded512.Divide(a, b);
                var expected = a / b;
                var nan = ~Vector512.Equals(expected, expected);
                return Differ(Vector512.ConditionalSelect(nan, expected, q), expected)
                    + BitOperations.PopCount(Vector512.ExtractMostSignificantBits(nan & Vector512.Equals(q, q)));
            });
            Assert.True(failures == 0, $"{failures} of 10⁹ random quotients differ (inside = {inside}), e.g. at seed 0x{example:X8}");
        }
    }

    private static Vector512<float> Next(Vector512<float> x, int direction) => (x.AsInt32() + Vector512.Create(direction)).AsSingle();

    /// <summary>lowbias32 on each lane.</summary>
    private static Vector512<uint> Hash(Vector512<uint> x)
    {
        x ^= x >> 16;
        x *= Vector512.Create(0x7FEB352Du);
        x ^= x >> 15;
        x *= Vector512.Create(0x846CA68Bu);
        return x ^ (x >> 16);
    }
}
