using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The AVX-512 kernel's window tails (2026-12-07 s20, <see cref="Runtime.KernelSettings.AttentionTails"/>): the padded keys' scores set to
/// −∞ by one blended 512-bit store per row, and a last group of at most four queries scored and summed as four rows instead of eight.
/// </summary>
/// <remarks>
/// Before, each softmax wrote −∞ over a row's padded keys one float at a time and then read the row back in 512-bit loads, which the core
/// cannot forward from those narrow stores (a store-forwarding stall per row); now the row's last vector is read, blended and written
/// whole right after the scores, the same values in the same memory. The four-query kernels compute each score and each output
/// element by the same FMA chain as the eight-query ones (<see cref="Scores512"/>, <see cref="WeightedValues512"/>), so the same bits;
/// they only leave out the four repeated queries of a short last group (on average a quarter of a window's last group of eight).
/// </remarks>
internal static unsafe partial class WindowAttention
{
    /// <summary>scores[r, j] = −∞ for the padded keys j ∈ [length, padded) of the first <paramref name="rows"/> rows [rows, padded]: the
    /// same memory the softmaxes' scalar fill wrote, in whole 512-bit vectors (padded a multiple of 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MaskPaddedScores(float* scores, int padded, int length, int rows)
    {
        var lanes = Vector512<int>.Indices;
        var minus = Vector512.Create(float.NegativeInfinity);
        for (int j = length / 16 * 16; j < padded; j += 16)
        {
            var keep = Vector512.LessThan(lanes, Vector512.Create(length - j)).AsSingle();
            for (int r = 0; r < rows; r++)
            {
                float* p = scores + ((long)r * padded) + j;
                Vector512.ConditionalSelect(keep, Vector512.Load(p), minus).Store(p);
            }
        }
    }

    /// <summary>
    /// The keys past the last whole group of eight (<see cref="TransposeKeys"/>'s element-by-element loop and a span cleared per
    /// column): the 1–7 tail keys and zeros as one more 8 × 8 tile per 8 columns, through a small buffer, then zeros up to L'. The
    /// same floats in the same places (the keys themselves and +0), so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransposeKeyTail(float* k, int width, int headWidth, int length, int padded, float* keys)
    {
        int from = length / 8 * 8, tail = length - from, zeros = from + (tail > 0 ? 8 : 0);
        if (tail > 0)
        {
            float* tile = stackalloc float[64];
            for (int c = 0; c < headWidth; c += 8)
            {
                for (int i = 0; i < 8; i++)
                    (i < tail ? Vector256.Load(k + ((long)(from + i) * width) + c) : Vector256<float>.Zero).Store(tile + (8 * i));
                SignHashKernel.Transpose8x8(tile, 8, keys + (c * padded) + from, padded);
            }
        }
        for (int c = 0; c < headWidth; c++)
            for (int j = zeros; j < padded; j += 8)
                Vector256<float>.Zero.Store(keys + (c * padded) + j);
    }

    /// <summary><see cref="Scores512"/> for four queries (rows 0–3 of scores): each score the same FMA chain over c, then × scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores512x4(float** queries, float* keys, int headWidth, int padded, float scale, float* scores)
    {
        float* q0 = queries[0], q1 = queries[1], q2 = queries[2], q3 = queries[3];
        var s = Vector512.Create(scale);
        int j = 0;
        for (; j + KeyTile <= padded; j += KeyTile)
        {
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
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
            }
            float* o = scores + j;
            (a00 * s).Store(o); (a01 * s).Store(o + 16); o += padded;
            (a10 * s).Store(o); (a11 * s).Store(o + 16); o += padded;
            (a20 * s).Store(o); (a21 * s).Store(o + 16); o += padded;
            (a30 * s).Store(o); (a31 * s).Store(o + 16);
        }
        if (j < padded)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            float* key = keys + j;
            for (int c = 0; c < headWidth; c++, key += padded)
            {
                var k0 = Vector512.Load(key);                                    // keys j … j+15, element c
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q0[c]), k0, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(q1[c]), k0, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Create(q2[c]), k0, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Create(q3[c]), k0, a3);
            }
            float* o = scores + j;
            (a0 * s).Store(o); (a1 * s).Store(o + padded); (a2 * s).Store(o + (2 * padded)); (a3 * s).Store(o + (3 * padded));
        }
    }

    /// <summary><see cref="WeightedValues512"/> for the first <paramref name="rows"/> (≤ 4) queries: the same FMA chains over j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedValues512x4(float* p, int padded, float* values, int width, int length, float* inverse, float* y, int rows)
    {
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        float* value = values;
        for (int j = 0; j < length; j++, value += width)
        {
            var v0 = Vector512.Load(value);
            var v1 = Vector512.Load(value + 16);
            var b = Vector512.Create(p[j]);
            a00 = Vector512.FusedMultiplyAdd(b, v0, a00); a01 = Vector512.FusedMultiplyAdd(b, v1, a01);
            b = Vector512.Create(p[padded + j]);
            a10 = Vector512.FusedMultiplyAdd(b, v0, a10); a11 = Vector512.FusedMultiplyAdd(b, v1, a11);
            b = Vector512.Create(p[(2 * padded) + j]);
            a20 = Vector512.FusedMultiplyAdd(b, v0, a20); a21 = Vector512.FusedMultiplyAdd(b, v1, a21);
            b = Vector512.Create(p[(3 * padded) + j]);
            a30 = Vector512.FusedMultiplyAdd(b, v0, a30); a31 = Vector512.FusedMultiplyAdd(b, v1, a31);
        }
        Store512(y, width, 0, rows, inverse, a00, a01);
        Store512(y, width, 1, rows, inverse, a10, a11);
        Store512(y, width, 2, rows, inverse, a20, a21);
        Store512(y, width, 3, rows, inverse, a30, a31);
    }
}
