using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// IEEE binary32 square root and division on sixteen lanes, correctly rounded (round to nearest even, as <c>vsqrtps</c> and
/// <c>vdivps</c>) but computed on the FMA ports from <c>vrsqrt14ps</c> / <c>vrcp14ps</c> instead of on the divider, for the AdamW
/// step (<see cref="Bf16Moments"/>, <see cref="AdamWKernel"/>; switch <c>KernelSettings.FmaSqrtDivide</c>). AVX-512 only.
/// </summary>
/// <remarks>
/// <para><b>What is proven, and how.</b> Each fast path has a stated domain; lanes outside it must be routed to the divider by the
/// caller (<see cref="OutsideSqrtDomain"/>, <see cref="OutsideDivideDomain"/>: one vector compare each, and a rarely taken branch).</para>
/// <para><see cref="SqrtFast"/> (rsqrt14, one coupled Newton step on s ≈ √v and h ≈ 1/(2√v), then s + (v − s²)·h) is checked against
/// <c>vsqrtps</c> for every float v in [2⁻¹⁰⁰, +∞) (<c>CorrectlyRounded512Tests</c>): equal bits. Zero, v below 2⁻¹⁰⁰ (where the
/// residual is no longer exact), +∞, NaN and negatives are outside its domain.</para>
/// <para><see cref="Reciprocal"/> (rcp14, a Newton step, Markstein's correction y + y·(1 − b·y), one ulp more where b's
/// significand is all ones) is checked to equal <c>1f / b</c> for every b in [2⁻¹²⁵, 2¹²⁶).</para>
/// <para><see cref="DivideFast"/> with y = RN(1/b): q₀ = RN(a·y), r₀ = RN(a − q₀b), q₁ = RN(q₀ + r₀y), r₁ = a − q₁b, q = RN(q₁ + r₁y).
/// Markstein's theorem (Muller et al., <i>Handbook of Floating-Point Arithmetic</i>, the division theorems of the FMA chapter):
/// if y is within ½ ulp of 1/b and q₁ within 1 ulp of a/b, with no underflow or overflow, then r₁ is exact and RN(q₁ + r₁y) =
/// RN(a/b). Its premise on y is the exhaustive reciprocal test; on q₁: |by − 1| ≤ 2⁻²⁴, so q₀ = a/b·(1 + δ) with |δ| ≤ 2⁻²³ + 2⁻⁴⁸;
/// r₀ = (a − q₀b)(1 + ε), |ε| ≤ 2⁻²⁴ (normal: see the domain), and q₀ + r₀y = a/b − (a/b − q₀)(by(1 + ε) − 1), whose error
/// |a/b − q₀|·(2⁻²³ + 2⁻⁴⁸) ≤ 2⁻⁴⁵|a/b| is far below ½ ulp(a/b) ≥ 2⁻²⁵|a/b|; its rounding adds at most ½ ulp, so q₁ is within 1 ulp.
/// The domain keeps every step normal: b in [2⁻⁶⁴, 2⁶⁴] and |a| in [2⁻⁶⁰, 2⁶⁰) give |a/b| in [2⁻¹²⁴, 2¹²⁴] and residuals that are
/// multiples of 2^(e(a) − 48) ≥ 2⁻¹⁰⁸ (representable, so the exactness argument holds). a = ±0 (the sign of the zero!), tiny or huge
/// a, and non-finite a are outside it. Structured and 10⁹ random pairs are tested against <c>vdivps</c> beside the proof.</para>
/// </remarks>
internal static class CorrectlyRounded512
{
    /// <summary>Whether the fast paths can run (AVX-512F: rcp14, rsqrt14, FMA on 512 bits).</summary>
    public static bool IsSupported => Avx512F.IsSupported;

    /// <summary>Smallest and largest |a| of <see cref="DivideFast"/>'s domain, as bits: [2⁻⁶⁰, 2⁶⁰).</summary>
    private const uint DivideLow = 67u << 23, DivideHigh = 187u << 23;

    /// <summary>The square root's domain as bits: [2⁻¹⁰⁰, +∞). Below it the residual v − s² (≈ 2⁻²⁴v) leaves the normal range and
    /// is no longer exact: the exhaustive sweep finds 1.8 M wrong roots among v &lt; 2⁻¹⁰², none above.</summary>
    private const uint SqrtLow = 27u << 23, SqrtHigh = 0x7F800000u;

    /// <summary>Lanes (all bits set) where <see cref="SqrtFast"/> is not proven: v zero, below 2⁻¹⁰⁰, +∞, NaN or negative.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<uint> OutsideSqrtDomain(Vector512<float> v) =>
        Vector512.GreaterThanOrEqual(v.AsUInt32() - Vector512.Create(SqrtLow), Vector512.Create(SqrtHigh - SqrtLow));

    /// <summary>Lanes where <see cref="DivideFast"/> is not proven for this dividend (the divisor's domain, [2⁻⁶⁴, 2⁶⁴], is the
    /// caller's): |a| zero, below 2⁻⁶⁰, at or above 2⁶⁰, or not finite.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<uint> OutsideDivideDomain(Vector512<float> a) =>
        Vector512.GreaterThanOrEqual((a.AsUInt32() & Vector512.Create(0x7FFFFFFFu)) - Vector512.Create(DivideLow), Vector512.Create(DivideHigh - DivideLow));

    /// <summary>The AdamW step's fast lanes (<see cref="Bf16Moments"/>, <see cref="AdamWKernel"/>), as bits: v in [2⁻¹⁰⁰, 2¹⁰⁰).</summary>
    private const uint MomentLow = 27u << 23, MomentHigh = 227u << 23;

    /// <summary>Whether the AdamW step's scalars keep its divisors in <see cref="DivideFast"/>'s domain: the bias correction
    /// <paramref name="bias"/> (√(1 − β₂ᵗ) or its reciprocal) in [2⁻¹⁰, 2¹⁰] and ε in [0, 2¹⁰]. Then, for every lane that
    /// <see cref="OutsideAdamWDomain"/> lets through, √v is in [2⁻⁵⁰, 2⁵⁰), √v·bias or √v / bias in [2⁻⁶⁰, 2⁶⁰], the
    /// denominator (that plus ε) in [2⁻⁶⁰, 2⁶¹), and the step's dividend in [2⁻⁶⁰, 2⁶⁰): all inside the proven domains.</summary>
    public static bool AdamWScalarsFit(float bias, float eps) =>
        bias >= 1f / 1024 && bias <= 1024f && eps >= 0f && eps <= 1024f;

    /// <summary>Lanes the AdamW step must take on the divider: the second moment <paramref name="v"/> outside [2⁻¹⁰⁰, 2¹⁰⁰) (zero,
    /// tiny, huge, not finite) or the step's dividend <paramref name="a"/> (−lr′·m) outside <see cref="OutsideDivideDomain"/>'s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<uint> OutsideAdamWDomain(Vector512<float> v, Vector512<float> a) =>
        Vector512.GreaterThanOrEqual(v.AsUInt32() - Vector512.Create(MomentLow), Vector512.Create(MomentHigh - MomentLow)) | OutsideDivideDomain(a);

    /// <summary>RN(√v) for v in [2⁻¹⁰⁰, +∞) (<see cref="OutsideSqrtDomain"/> false): 1 rsqrt14, 2 multiplies, 5 FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> SqrtFast(Vector512<float> v)
    {
        var half = Vector512.Create(0.5f);
        var y = Avx512F.ReciprocalSqrt14(v);                         // 1/√v, relative error < 2⁻¹⁴
        var s = v * y;                                               // √v
        var h = y * half;                                            // 1/(2√v)
        var r = Avx512F.FusedMultiplyAddNegated(s, h, half);         // ½ − s·h
        s = Avx512F.FusedMultiplyAdd(s, r, s);                       // ≈ 2⁻²⁸ before rounding
        h = Avx512F.FusedMultiplyAdd(h, r, h);
        var d = Avx512F.FusedMultiplyAddNegated(s, s, v);            // v − s², exact
        return Avx512F.FusedMultiplyAdd(d, h, s);
    }

    /// <summary>RN(√v) for every v ≥ 0, +∞ and NaN: <see cref="SqrtFast"/>, or <c>vsqrtps</c> when any lane is outside its domain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Sqrt(Vector512<float> v) =>
        OutsideSqrtDomain(v) == Vector512<uint>.Zero ? SqrtFast(v) : Vector512.Sqrt(v);

    /// <summary>RN(1/b) for b in [2⁻¹²⁵, 2¹²⁶): 1 rcp14, 4 FMAs, and one integer fix.</summary>
    /// <remarks>Markstein's correction y + y(1 − by) of a faithful y rounds correctly except where b's significand is all ones
    /// (b = (2 − 2⁻²³)·2ᵉ): there 1/b = 2⁻ᵉ⁻¹(1 + 2⁻²⁴ + 2⁻⁴⁸ + …) lies just above the midpoint 2⁻ᵉ⁻¹(1 + 2⁻²⁴), and y = 2⁻ᵉ⁻¹
    /// makes the correction land on the tie, which rounds to even: down. The sweep finds exactly those 251 (one per exponent);
    /// the fix adds one ulp there.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Reciprocal(Vector512<float> b)
    {
        var one = Vector512<float>.One;
        var y = Avx512F.Reciprocal14(b);                             // relative error < 2⁻¹⁴
        var e = Avx512F.FusedMultiplyAddNegated(b, y, one);          // 1 − b·y
        y = Avx512F.FusedMultiplyAdd(y, e, y);                       // faithful
        e = Avx512F.FusedMultiplyAddNegated(b, y, one);              // exact
        var rounded = Avx512F.FusedMultiplyAdd(y, e, y).AsUInt32();  // RN(1/b) but where b's significand is all ones
        var allOnes = Vector512.Equals(b.AsUInt32() | Vector512.Create(0xFF800000u), Vector512<uint>.AllBitsSet);
        return (rounded - allOnes).AsSingle();                       // + 1 ulp there (allOnes is −1 in those lanes)
    }

    /// <summary>RN(a/b) given y = RN(1/b), for b in [2⁻⁶⁴, 2⁶⁴] and <see cref="OutsideDivideDomain"/>(a) false: 1 multiply, 4 FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> DivideFast(Vector512<float> a, Vector512<float> b, Vector512<float> y)
    {
        var q = a * y;
        var r = Avx512F.FusedMultiplyAddNegated(q, b, a);
        q = Avx512F.FusedMultiplyAdd(r, y, q);                       // within 1 ulp of a/b
        r = Avx512F.FusedMultiplyAddNegated(q, b, a);                // exact
        return Avx512F.FusedMultiplyAdd(r, y, q);                    // Markstein: RN(a/b)
    }

    /// <summary>RN(a/b) for any a and b: <see cref="DivideFast"/>, or <c>vdivps</c> when any lane is outside the proven domain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b)
    {
        var outside = OutsideDivideDomain(a)
            | Vector512.GreaterThan(b.AsUInt32() - Vector512.Create(63u << 23), Vector512.Create(128u << 23));   // b ∉ [2⁻⁶⁴, 2⁶⁴]
        return outside == Vector512<uint>.Zero ? DivideFast(a, b, Reciprocal(b)) : a / b;
    }
}
