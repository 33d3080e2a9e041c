using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>The AVX-512 softmax of <see cref="WindowAttention"/>'s score rows: one row, two or four at a time (their exp chains
/// interleaved), the row maximum, and the exp it uses (the lean one, and the one before 2026-12-06 s18 behind
/// <see cref="KernelSettings.LeanSoftmax"/>).</summary>
internal static unsafe partial class WindowAttention
{
    /// <summary><see cref="Softmax"/> in 512-bit lanes (L' a multiple of 16). The padded keys' exp is 0, and x + 0 = x, so the
    /// sum per lane, and with it the result, does not depend on whether L' was rounded up to 16 or to 32. Scores [fill, L') are set
    /// to −∞ first: fill = L, or L' where the caller has masked them (<see cref="MaskPaddedScores"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Softmax512(float* scores, int fill, int padded)
    {
        for (int j = fill; j < padded; j++)
            scores[j] = float.NegativeInfinity;
        if (!KernelSettings.Current.LeanSoftmax)
            return SoftmaxBefore512(scores, padded);
        var top = Vector512.Create(RowMax512(scores, padded));
        var sum = Vector512<float>.Zero;
        bool scaled = KernelSettings.Current.ScaledExp;
        for (int j = 0; j < padded; j += 16)
        {
            var e = LeanExp512(Vector512.Load(scores + j) - top, scaled);         // −∞ → 0
            e.Store(scores + j);
            sum += e;
        }
        return Vector512.Sum(sum);
    }

    /// <summary>
    /// The lean <see cref="Softmax512"/> of two score rows at once, their max and exp passes interleaved: two independent
    /// exp chains per step for the out-of-order core, where one row's short passes (≈ 7 vectors for a 112-key window) leave
    /// it waiting on each exp's latency. Each row gets the same operations in the same order as alone, so the same bits;
    /// writes 1 / sum of each row into <paramref name="inverse"/>[0, 1].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SoftmaxPair512(float* a, float* b, int fill, int padded, float* inverse)
    {
        for (int j = fill; j < padded; j++)
        {
            a[j] = float.NegativeInfinity;
            b[j] = float.NegativeInfinity;
        }
        var topA = Vector512.Create(RowMax512(a, padded));
        var topB = Vector512.Create(RowMax512(b, padded));
        Vector512<float> sumA = Vector512<float>.Zero, sumB = sumA;
        bool scaled = KernelSettings.Current.ScaledExp;
        for (int j = 0; j < padded; j += 16)
        {
            var ea = LeanExp512(Vector512.Load(a + j) - topA, scaled);            // −∞ → 0
            var eb = LeanExp512(Vector512.Load(b + j) - topB, scaled);
            ea.Store(a + j);
            eb.Store(b + j);
            sumA += ea;
            sumB += eb;
        }
        inverse[0] = 1f / Vector512.Sum(sumA);
        inverse[1] = 1f / Vector512.Sum(sumB);
    }

    /// <summary><see cref="SoftmaxPair512"/> for four rows [4, L'] at <paramref name="s"/> (row stride L'): four exp chains per
    /// step; the same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SoftmaxQuad512(float* s, int padded, int fill, float* inverse)
    {
        float* a = s, b = s + padded, c = b + padded, d = c + padded;
        for (int j = fill; j < padded; j++)
            a[j] = b[j] = c[j] = d[j] = float.NegativeInfinity;
        var topA = Vector512.Create(RowMax512(a, padded));
        var topB = Vector512.Create(RowMax512(b, padded));
        var topC = Vector512.Create(RowMax512(c, padded));
        var topD = Vector512.Create(RowMax512(d, padded));
        if (KernelSettings.Current.ScaledExp)                                    // the switch outside the loop: no branch per exp
            QuadExps<ScaledFlag>(s, padded, topA, topB, topC, topD, inverse);
        else
            QuadExps<UnscaledFlag>(s, padded, topA, topB, topC, topD, inverse);
    }

    /// <summary><see cref="SoftmaxQuad512"/>'s exp pass, <see cref="LeanExp512(Vector512{float}, bool)"/>'s last step fixed by
    /// <typeparamref name="TScaled"/> when the method is compiled.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QuadExps<TScaled>(float* s, int padded, Vector512<float> topA, Vector512<float> topB, Vector512<float> topC,
        Vector512<float> topD, float* inverse) where TScaled : struct, IExpFlag
    {
        float* a = s, b = s + padded, c = b + padded, d = c + padded;
        Vector512<float> sumA = Vector512<float>.Zero, sumB = sumA, sumC = sumA, sumD = sumA;
        for (int j = 0; j < padded; j += 16)
        {
            var ea = LeanExp512(Vector512.Load(a + j) - topA, TScaled.Scaled);    // −∞ → 0
            var eb = LeanExp512(Vector512.Load(b + j) - topB, TScaled.Scaled);
            var ec = LeanExp512(Vector512.Load(c + j) - topC, TScaled.Scaled);
            var ed = LeanExp512(Vector512.Load(d + j) - topD, TScaled.Scaled);
            ea.Store(a + j);
            eb.Store(b + j);
            ec.Store(c + j);
            ed.Store(d + j);
            sumA += ea;
            sumB += eb;
            sumC += ec;
            sumD += ed;
        }
        inverse[0] = 1f / Vector512.Sum(sumA);
        inverse[1] = 1f / Vector512.Sum(sumB);
        inverse[2] = 1f / Vector512.Sum(sumC);
        inverse[3] = 1f / Vector512.Sum(sumD);
    }

    /// <summary>Which last step <see cref="QuadExps"/> compiles in: a constant per struct, folded by the JIT.</summary>
    internal interface IExpFlag
    {
        static abstract bool Scaled { get; }
    }

    /// <summary><see cref="KernelSettings.ScaledExp"/> on.</summary>
    internal readonly struct ScaledFlag : IExpFlag
    {
        public static bool Scaled => true;
    }

    /// <summary><see cref="KernelSettings.ScaledExp"/> off.</summary>
    internal readonly struct UnscaledFlag : IExpFlag
    {
        public static bool Scaled => false;
    }

    /// <summary><see cref="Softmax512"/>'s max and exp passes as before 2026-12-06 s18 (<see cref="KernelSettings.LeanSoftmax"/> off).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float SoftmaxBefore512(float* scores, int padded)
    {
        var max = Vector512.Create(float.NegativeInfinity);
        for (int j = 0; j < padded; j += 16)
            max = Vector512.Max(max, Vector512.Load(scores + j));
        var top = Vector512.Create(HorizontalMax(Vector256.Max(max.GetLower(), max.GetUpper())));
        var sum = Vector512<float>.Zero;
        for (int j = 0; j < padded; j += 16)
        {
            var e = Exp512(Vector512.Load(scores + j) - top);                     // −∞ → 0
            e.Store(scores + j);
            sum += e;
        }
        return Vector512.Sum(sum);
    }

    /// <summary>
    /// The largest of scores[0, L') (L' a multiple of 16) with <c>vmaxps</c> in two independent chains. <c>Vector512.Max</c>
    /// follows IEEE 754-2019 (NaN and −0 handling) and compiles to three dependent instructions per step on this JIT, which
    /// made the max pass of <see cref="Softmax512"/> a latency chain costlier than its exp pass (the Intel profile in
    /// docs/benchmarks.md, "Scoring, seventh round"). The same bits: a maximum of finite scores and −∞ is exact in any order,
    /// and where it could differ — +0 against −0 — s − (+0) and s − (−0) are equal for every s ≠ 0 and both zeros give exp 1;
    /// a NaN score still turns the whole row to NaN through its exp and the sum. Training's managed attention
    /// (<see cref="AttentionTiles.Softmax"/>) uses it too.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float RowMax512(float* scores, int padded)
    {
        var m0 = Vector512.Create(float.NegativeInfinity);
        var m1 = m0;
        int j = 0;
        for (; j + 32 <= padded; j += 32)
        {
            m0 = Avx512F.Max(m0, Vector512.Load(scores + j));
            m1 = Avx512F.Max(m1, Vector512.Load(scores + j + 16));
        }
        if (j < padded)
            m0 = Avx512F.Max(m0, Vector512.Load(scores + j));
        m0 = Avx512F.Max(m0, m1);
        var m8 = Avx.Max(m0.GetLower(), m0.GetUpper());
        var m4 = Sse.Max(m8.GetLower(), m8.GetUpper());
        m4 = Sse.Max(m4, Sse.Shuffle(m4, m4, 0b01_00_11_10));                    // (2, 3, 0, 1)
        m4 = Sse.Max(m4, Sse.Shuffle(m4, m4, 0b10_11_00_01));                    // (1, 0, 3, 2)
        return m4.ToScalar();
    }

    /// <summary><see cref="SignHashKernel.ExpOfNonPositive"/> in 512-bit lanes: the same operations, the same bits per lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp512(Vector512<float> x)
    {
        var n = Vector512.Round(x * 1.44269504f);
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var y = ExpPolynomial512(r);
        var twoToN = ((Vector512.ConvertToInt32Native(n) + Vector512.Create(127)) << 23).AsSingle();
        return Vector512.AndNot(y * twoToN, Vector512.LessThan(x, Vector512.Create(-87.33654f)));
    }

    /// <summary>
    /// <see cref="Exp512"/> with fewer instructions and the same bits for every x ≤ 0 (and −∞): n = x·log₂e rounded to
    /// nearest-even once as an integer (<c>vcvtps2dq</c> with embedded rounding) and widened back, where <see cref="Exp512"/>
    /// rounds in float (<c>vrndscaleps</c>, two µops on Intel) and converts again; the two agree wherever the result is not
    /// masked (|x·log₂e| ≤ 126), and for x = −0 the rounded n is +0 instead of −0, which changes r's first step to −0 but
    /// not its second (+0 either way). The underflow mask zeroes the product in one masked multiply instead of a compare,
    /// a mask-to-vector move and an and. NaN stays NaN.
    /// </summary>
    /// <remarks>With <see cref="KernelSettings.ScaledExp"/> (the overload with scaled) the last step, y · 2ⁿ, is one <c>vscalefps</c>
    /// of y by the float n instead of 2ⁿ built in the exponent bits (an integer add and a shift) and a multiply: two instructions fewer
    /// per vector and the same bits. Wherever the result is not masked, n is an integer in [−126, 0], so 2ⁿ is a normal float and both
    /// compute y·2ⁿ exactly and round it once, to the same float (a subnormal one included); a NaN y stays the same NaN.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> LeanExp512(Vector512<float> x) => LeanExp512(x, scaled: false);

    /// <summary><see cref="LeanExp512(Vector512{float})"/>, its last step as <c>vscalefps</c> when <paramref name="scaled"/> (the caller
    /// reads <see cref="KernelSettings.ScaledExp"/> once, outside its loop); the same bits either way.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> LeanExp512(Vector512<float> x, bool scaled)
    {
        var whole = Avx512F.ConvertToVector512Int32(x * 1.44269504f, FloatRoundingMode.ToEven);
        var n = Avx512F.ConvertToVector512Single(whole);
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var y = ExpPolynomial512(r);
        var e = scaled ? Avx512F.Scale(y, n) : y * ((whole + Vector512.Create(127)) << 23).AsSingle();
        return Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(-87.33654f)), Vector512<float>.Zero, e);
    }

    /// <summary>e^r for the reduced argument r (|r| ≤ ln 2 / 2) of both 512-bit exps: the polynomial of
    /// <see cref="SignHashKernel.ExpOfNonPositive"/>, the same operations in the same order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ExpPolynomial512(Vector512<float> r)
    {
        var y = Vector512.FusedMultiplyAdd(Vector512.Create(1.9875691500e-4f), r, Vector512.Create(1.3981999507e-3f));
        y = Vector512.FusedMultiplyAdd(y, r, Vector512.Create(8.3334519073e-3f));
        y = Vector512.FusedMultiplyAdd(y, r, Vector512.Create(4.1665795894e-2f));
        y = Vector512.FusedMultiplyAdd(y, r, Vector512.Create(1.6666665459e-1f));
        y = Vector512.FusedMultiplyAdd(y, r, Vector512.Create(5.0000001201e-1f));
        return Vector512.FusedMultiplyAdd(y, r * r, r) + Vector512<float>.One;
    }
}
