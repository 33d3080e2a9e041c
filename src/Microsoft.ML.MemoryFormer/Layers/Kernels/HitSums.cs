using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The horizontal sums of sixteen vectors at once, each the same bits as <see cref="RowGradientKernel.TreeSum"/> of it: the row pass's
/// per-hit inner products (<see cref="RowGradientKernel"/>) summed a batch of hits at a time, 30 in-lane shuffles and 15 adds for sixteen
/// hits where one tree per hit takes three permutes, three adds and two extracts each.
/// </summary>
/// <remarks>
/// <see cref="RowGradientKernel.TreeSum"/> adds adjacent lanes, then adjacent pairs (each 128-bit quarter), then quarters 0 + 1 and
/// 2 + 3, then the two halves. Here every level takes two vectors' partial sums into one register (<c>vshufps</c> within 128-bit
/// quarters for the first two levels, <c>vshuff32x4</c> across them for the last two), so every value is the sum of the same two
/// operands as in the tree; float addition is commutative, so the sums are the same bits.
/// </remarks>
internal static unsafe class HitSums
{
    /// <summary>Hits summed together: one lane of a 512-bit register each.</summary>
    public const int Batch = 16;

    /// <summary>Whether this machine runs <see cref="Sum16"/> (AVX-512).</summary>
    public static bool IsAccelerated => Avx512F.IsSupported;

    /// <summary>Lane j of the result = <see cref="RowGradientKernel.TreeSum"/>(<paramref name="v"/>[j]) for j = 0..15.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Sum16(Vector512<float>* v)
    {
        // Level 1 + 2 per four vectors: quarter q of C holds the four vectors' quarter-q sums.
        var c0 = Quarters(v);
        var c1 = Quarters(v + 4);
        var d0 = Halves(c0, c1);                                               // [h0(0–3), h1(0–3), h0(4–7), h1(4–7)]
        var c2 = Quarters(v + 8);
        var c3 = Quarters(v + 12);
        var d1 = Halves(c2, c3);                                               // the same for vectors 8–15
        return Avx512F.Add(Avx512F.Shuffle4x128(d0, d1, 0b10_00_10_00), Avx512F.Shuffle4x128(d0, d1, 0b11_01_11_01));
    }

    /// <summary>Four vectors → quarter q of the result = [v0, v1, v2, v3]'s sums of quarter q (adjacent lanes, then adjacent pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Quarters(Vector512<float>* v)
    {
        var a = Pairs(v[0], v[1]);                                              // per quarter: [v0 p0, v0 p1, v1 p0, v1 p1]
        var b = Pairs(v[2], v[3]);
        return Avx512F.Add(Avx512F.Shuffle(a, b, 0b10_00_10_00), Avx512F.Shuffle(a, b, 0b11_01_11_01));
    }

    /// <summary>Per 128-bit quarter: [x0 + x1, x2 + x3, y0 + y1, y2 + y3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Pairs(Vector512<float> x, Vector512<float> y) =>
        Avx512F.Add(Avx512F.Shuffle(x, y, 0b10_00_10_00), Avx512F.Shuffle(x, y, 0b11_01_11_01));

    /// <summary>Two vectors of quarter sums (vectors 0–3 and 4–7) → [q0 + q1, q2 + q3] of 0–3, then of 4–7.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Halves(Vector512<float> c0, Vector512<float> c1) =>
        Avx512F.Add(Avx512F.Shuffle4x128(c0, c1, 0b10_00_10_00), Avx512F.Shuffle4x128(c0, c1, 0b11_01_11_01));
}
