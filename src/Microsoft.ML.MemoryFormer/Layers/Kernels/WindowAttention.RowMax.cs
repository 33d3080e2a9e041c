using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The softmax's row maximum taken in <see cref="Scores512"/>'s epilogue (2026-12-07 s20, <see cref="Runtime.KernelSettings.ScoresRowMax"/>):
/// each 32-key tile's scores are in registers when they are stored, so one <c>vmaxps</c> per row and tile keeps a running maximum
/// there, and the softmax no longer reads every score row once more (<see cref="RowMax512"/>) before its exp pass. The padded keys'
/// scores are set to −∞ in the same epilogue (as <see cref="MaskPaddedScores"/> does after the fact).
/// </summary>
/// <remarks>The same bits for finite scores: the maximum of a set of floats and −∞ is the same value in any order of <c>vmaxps</c>
/// steps, and where two zeros of opposite sign tie, s − (+0) and s − (−0) are the same for every s ≠ 0 and both zeros give exp 1 (as
/// for <see cref="RowMax512"/>). A NaN score still makes its whole row NaN, through its exp and the sum.</remarks>
internal static unsafe partial class WindowAttention
{
    /// <summary><see cref="Scores512"/> for eight queries that also writes each row's maximum over its <paramref name="length"/> real
    /// keys to <paramref name="tops"/>[8] and −∞ over the padded ones.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores512Max(float** queries, float* keys, int headWidth, int padded, int length, float scale, float* scores, float* tops)
    {
        float* q0 = queries[0], q1 = queries[1], q2 = queries[2], q3 = queries[3], q4 = queries[4], q5 = queries[5], q6 = queries[6], q7 = queries[7];
        var s = Vector512.Create(scale);
        var minus = Vector512.Create(float.NegativeInfinity);
        Vector512<float> m0 = minus, m1 = minus, m2 = minus, m3 = minus, m4 = minus, m5 = minus, m6 = minus, m7 = minus;
        int j = 0;
        for (; j + KeyTile <= padded; j += KeyTile)
        {
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
            Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a61 = default, a70 = default, a71 = default;
            float* key = keys + j;
            for (int c = 0; c < headWidth; c++, key += padded)
            {
                var k0 = Vector512.Load(key);
                var k1 = Vector512.Load(key + 16);
                var b = Vector512.Create(q0[c]);
                a00 = Vector512.FusedMultiplyAdd(b, k0, a00); a01 = Vector512.FusedMultiplyAdd(b, k1, a01);
                b = Vector512.Create(q1[c]);
                a10 = Vector512.FusedMultiplyAdd(b, k0, a10); a11 = Vector512.FusedMultiplyAdd(b, k1, a11);
                b = Vector512.Create(q2[c]);
                a20 = Vector512.FusedMultiplyAdd(b, k0, a20); a21 = Vector512.FusedMultiplyAdd(b, k1, a21);
                b = Vector512.Create(q3[c]);
                a30 = Vector512.FusedMultiplyAdd(b, k0, a30); a31 = Vector512.FusedMultiplyAdd(b, k1, a31);
                b = Vector512.Create(q4[c]);
                a40 = Vector512.FusedMultiplyAdd(b, k0, a40); a41 = Vector512.FusedMultiplyAdd(b, k1, a41);
                b = Vector512.Create(q5[c]);
                a50 = Vector512.FusedMultiplyAdd(b, k0, a50); a51 = Vector512.FusedMultiplyAdd(b, k1, a51);
                b = Vector512.Create(q6[c]);
                a60 = Vector512.FusedMultiplyAdd(b, k0, a60); a61 = Vector512.FusedMultiplyAdd(b, k1, a61);
                b = Vector512.Create(q7[c]);
                a70 = Vector512.FusedMultiplyAdd(b, k0, a70); a71 = Vector512.FusedMultiplyAdd(b, k1, a71);
            }
            float* o = scores + j;
            if (j + KeyTile <= length)
            {
                m0 = StoreMax(o, a00 * s, a01 * s, m0); o += padded;
                m1 = StoreMax(o, a10 * s, a11 * s, m1); o += padded;
                m2 = StoreMax(o, a20 * s, a21 * s, m2); o += padded;
                m3 = StoreMax(o, a30 * s, a31 * s, m3); o += padded;
                m4 = StoreMax(o, a40 * s, a41 * s, m4); o += padded;
                m5 = StoreMax(o, a50 * s, a51 * s, m5); o += padded;
                m6 = StoreMax(o, a60 * s, a61 * s, m6); o += padded;
                m7 = StoreMax(o, a70 * s, a71 * s, m7);
            }
            else
            {
                var lanes = Vector512<int>.Indices;
                var keep0 = Vector512.LessThan(lanes, Vector512.Create(length - j)).AsSingle();
                var keep1 = Vector512.LessThan(lanes, Vector512.Create(length - j - 16)).AsSingle();
                m0 = StoreMax(o, Vector512.ConditionalSelect(keep0, a00 * s, minus), Vector512.ConditionalSelect(keep1, a01 * s, minus), m0); o += padded;
                m1 = StoreMax(o, Vector512.ConditionalSelect(keep0, a10 * s, minus), Vector512.ConditionalSelect(keep1, a11 * s, minus), m1); o += padded;
                m2 = StoreMax(o, Vector512.ConditionalSelect(keep0, a20 * s, minus), Vector512.ConditionalSelect(keep1, a21 * s, minus), m2); o += padded;
                m3 = StoreMax(o, Vector512.ConditionalSelect(keep0, a30 * s, minus), Vector512.ConditionalSelect(keep1, a31 * s, minus), m3); o += padded;
                m4 = StoreMax(o, Vector512.ConditionalSelect(keep0, a40 * s, minus), Vector512.ConditionalSelect(keep1, a41 * s, minus), m4); o += padded;
                m5 = StoreMax(o, Vector512.ConditionalSelect(keep0, a50 * s, minus), Vector512.ConditionalSelect(keep1, a51 * s, minus), m5); o += padded;
                m6 = StoreMax(o, Vector512.ConditionalSelect(keep0, a60 * s, minus), Vector512.ConditionalSelect(keep1, a61 * s, minus), m6); o += padded;
                m7 = StoreMax(o, Vector512.ConditionalSelect(keep0, a70 * s, minus), Vector512.ConditionalSelect(keep1, a71 * s, minus), m7);
            }
        }
        if (j < padded)
        {
            ShortTileScores512(queries, keys + j, headWidth, padded, s, scores + j);
            var keep = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(length - j)).AsSingle();
            m0 = TailMax(scores + j, keep, minus, m0);
            m1 = TailMax(scores + padded + j, keep, minus, m1);
            m2 = TailMax(scores + (2 * padded) + j, keep, minus, m2);
            m3 = TailMax(scores + (3 * padded) + j, keep, minus, m3);
            m4 = TailMax(scores + (4 * padded) + j, keep, minus, m4);
            m5 = TailMax(scores + (5 * padded) + j, keep, minus, m5);
            m6 = TailMax(scores + (6 * padded) + j, keep, minus, m6);
            m7 = TailMax(scores + (7 * padded) + j, keep, minus, m7);
        }
        tops[0] = HorizontalMax512(m0); tops[1] = HorizontalMax512(m1); tops[2] = HorizontalMax512(m2); tops[3] = HorizontalMax512(m3);
        tops[4] = HorizontalMax512(m4); tops[5] = HorizontalMax512(m5); tops[6] = HorizontalMax512(m6); tops[7] = HorizontalMax512(m7);
    }

    /// <summary>Stores a row's 32 scores and returns the running maximum with both halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> StoreMax(float* o, Vector512<float> low, Vector512<float> high, Vector512<float> max)
    {
        low.Store(o);
        high.Store(o + 16);
        return Avx512F.Max(max, Avx512F.Max(low, high));
    }

    /// <summary>The last 16 scores of a row, its padded ones set to −∞ (re-read whole from the vector just stored), into the running maximum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> TailMax(float* o, Vector512<float> keep, Vector512<float> minus, Vector512<float> max)
    {
        var v = Vector512.ConditionalSelect(keep, Vector512.Load(o), minus);
        v.Store(o);
        return Avx512F.Max(max, v);
    }

    /// <summary>The largest lane, by <see cref="RowMax512"/>'s reduction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalMax512(Vector512<float> m)
    {
        var m8 = Avx.Max(m.GetLower(), m.GetUpper());
        var m4 = Sse.Max(m8.GetLower(), m8.GetUpper());
        m4 = Sse.Max(m4, Sse.Shuffle(m4, m4, 0b01_00_11_10));                    // (2, 3, 0, 1)
        m4 = Sse.Max(m4, Sse.Shuffle(m4, m4, 0b10_11_00_01));                    // (1, 0, 3, 2)
        return m4.ToScalar();
    }

    /// <summary>The lean softmax of the first <paramref name="rows"/> rows [rows, L'] whose maxima <paramref name="tops"/> and −∞ padding
    /// <see cref="Scores512Max"/> wrote: the exp passes of <see cref="SoftmaxQuad512"/> four rows at a time, then of <see cref="Softmax512"/>
    /// one row at a time; 1 / sum of each row into <paramref name="inverse"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SoftmaxRowsWithTops(float* scores, int padded, int rows, float* tops, float* inverse)
    {
        bool scaled = Runtime.KernelSettings.Current.ScaledExp;
        int r = 0;
        for (; r + 4 <= rows; r += 4)
        {
            float* s = scores + (r * padded);
            Vector512<float> topA = Vector512.Create(tops[r]), topB = Vector512.Create(tops[r + 1]), topC = Vector512.Create(tops[r + 2]), topD = Vector512.Create(tops[r + 3]);
            if (scaled) QuadExps<ScaledFlag>(s, padded, topA, topB, topC, topD, inverse + r);
            else QuadExps<UnscaledFlag>(s, padded, topA, topB, topC, topD, inverse + r);
        }
        for (; r < rows; r++)
        {
            float* s = scores + (r * padded);
            var top = Vector512.Create(tops[r]);
            var sum = Vector512<float>.Zero;
            for (int j = 0; j < padded; j += 16)
            {
                var e = LeanExp512(Vector512.Load(s + j) - top, scaled);             // −∞ → 0
                e.Store(s + j);
                sum += e;
            }
            inverse[r] = 1f / Vector512.Sum(sum);
        }
    }
}
