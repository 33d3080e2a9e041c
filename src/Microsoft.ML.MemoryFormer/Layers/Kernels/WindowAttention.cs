using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Bidirectional softmax attention of packed, unpadded windows for the fused inference encoder
/// (<see cref="FusedEncoderBlock"/>): every token of a window attends to every token of the same window, as
/// <c>scaled_dot_product_attention</c> without a mask (scale 1/√hd). Q, K, V and the output are token-major
/// [N, H·hd] (heads side by side in a token's row, as the Memory Layers write them), windows back to back.
/// </summary>
/// <remarks>
/// One (window, head) pair per work item: the head's keys are copied transposed into [hd, L'] (L' = L rounded up to 32, or to 16 in the
/// AVX-512 kernel with <see cref="KernelSettings.ShortKeyTiles"/>,
/// the tail zero and masked out), then four queries at a time get their scores from 4 × 32 register tiles
/// (QKᵀ), a softmax with the vectorised exp of the sign hash (<see cref="SignHashKernel.ExpOfNonPositive"/>) and
/// P·V in 4 × 32-column register tiles, normalised at the end. With AVX-512 and hd a multiple of 32, eight queries at a
/// time in 512-bit registers (the same dot products and value sums in the same order; the softmax sum reduced in another
/// order). A window is never padded, so no key mask is needed.
/// Needs hd a multiple of 8. Accumulates in fp32; results differ from libtorch's by float rounding only. Every method is
/// compiled fully optimised from the first call (<c>AggressiveOptimization</c>): a vector reduction such as
/// <c>Vector256.Sum</c> adds in another order in tier-0 code, and the scores must not change between calls.
/// </remarks>
internal static unsafe partial class WindowAttention
{
    private const int Queries = 4;
    private const int WideQueries = 8;
    private const int KeyTile = 32;

    /// <summary>The AVX-512 kernel's last key tile when <see cref="KernelSettings.ShortKeyTiles"/> is on: keys are padded to a
    /// multiple of 16, not 32 (one 512-bit register of scores per query instead of two).</summary>
    private const int ShortKeyTile = 16;

    /// <summary>True when the kernel handles heads of this width.</summary>
    public static bool Supports(int headWidth) => headWidth > 0 && headWidth % 8 == 0 && Vector256.IsHardwareAccelerated;

    /// <summary>
    /// y[n, h·hd …] = softmax(q_h kᵀ_h / √hd) v_h within each window; windows are [starts[w], starts[w+1]) of the N tokens.
    /// </summary>
    /// <param name="q">Queries [N, H·hd] (rotary applied).</param>
    /// <param name="k">Keys [N, H·hd] (rotary applied).</param>
    /// <param name="v">Values [N, H·hd].</param>
    /// <param name="y">Output [N, H·hd].</param>
    /// <param name="heads">H.</param>
    /// <param name="headWidth">hd, a multiple of 8.</param>
    /// <param name="starts">Window starts, W + 1 entries, the last N.</param>
    /// <param name="avx512">Take the AVX-512 kernel (eight queries against 32-key tiles in 512-bit registers) where the
    /// hardware has it and hd is a multiple of 32; false: the 256-bit one (kept for the benchmark and the tests).</param>
    public static void Run(float* q, float* k, float* v, float* y, int heads, int headWidth, int[] starts, bool avx512 = true) =>
        Run(q, k, v, y, heads, headWidth, starts, null, avx512);

    /// <summary>As <see cref="Run(float*, float*, float*, float*, int, int, int[], bool)"/> for the windows listed in
    /// <paramref name="selected"/> only (all when null); the other windows' output rows are left alone.</summary>
    public static void Run(float* q, float* k, float* v, float* y, int heads, int headWidth, int[] starts, int[]? selected, bool avx512 = true)
    {
        if (!Supports(headWidth))
            throw new ArgumentOutOfRangeException(nameof(headWidth), headWidth, "The window attention kernel needs a head width that is a multiple of 8 and 256-bit vectors.");
        var chosen = selected ?? Enumerable.Range(0, starts.Length - 1).ToArray();
        int windows = chosen.Length, longest = 0;
        foreach (int w in chosen)
            longest = Math.Max(longest, starts[w + 1] - starts[w]);
        if (windows <= 0 || longest == 0)
            return;
        nint qa = (nint)q, ka = (nint)k, va = (nint)v, ya = (nint)y;
        int padded = (longest + KeyTile - 1) / KeyTile * KeyTile;
        bool wide = avx512 && Vector512.IsHardwareAccelerated && headWidth % 32 == 0;
        KernelParallel.For(windows * heads, 2L * longest * longest * headWidth, (start, end) =>
        {
            var scratch = GC.AllocateUninitializedArray<float>((headWidth * padded) + (WideQueries * padded));
            fixed (float* keys = scratch)                                         // pinned and alive until the range is done
            {
                for (int item = start; item < end; item++)
                {
                    int w = chosen[item / heads], h = item % heads;
                    if (wide)
                        Head512((float*)qa, (float*)ka, (float*)va, (float*)ya, heads * headWidth, headWidth, h, starts[w], starts[w + 1] - starts[w],
                            keys, keys + (headWidth * padded));
                    else
                        Head((float*)qa, (float*)ka, (float*)va, (float*)ya, heads * headWidth, headWidth, h, starts[w], starts[w + 1] - starts[w],
                            keys, keys + (headWidth * padded));
                }
            }
        });
    }

    /// <summary>Floats of scratch <see cref="Window"/> needs for a window of up to <paramref name="longest"/> tokens.</summary>
    public static int ScratchFloats(int headWidth, int longest)
    {
        int padded = (longest + KeyTile - 1) / KeyTile * KeyTile;
        return (headWidth * padded) + (WideQueries * padded);
    }

    /// <summary>
    /// Every head of the one window [offset, offset + length) on the calling thread: the work items of
    /// <see cref="Run(float*, float*, float*, float*, int, int, int[], bool)"/> for that window, the same arithmetic and so
    /// the same bits. <paramref name="scratch"/> holds <see cref="ScratchFloats"/>(hd, length) floats; hd must be
    /// <see cref="Supports">supported</see>.
    /// </summary>
    public static void Window(float* q, float* k, float* v, float* y, int heads, int headWidth, int offset, int length, float* scratch, bool avx512 = true)
    {
        int padded = (length + KeyTile - 1) / KeyTile * KeyTile;
        bool wide = avx512 && Vector512.IsHardwareAccelerated && headWidth % 32 == 0;
        for (int h = 0; h < heads; h++)
        {
            if (wide)
                Head512(q, k, v, y, heads * headWidth, headWidth, h, offset, length, scratch, scratch + (headWidth * padded));
            else
                Head(q, k, v, y, heads * headWidth, headWidth, h, offset, length, scratch, scratch + (headWidth * padded));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Head(float* q, float* k, float* v, float* y, int width, int headWidth, int head, int offset, int length,
        float* keys, float* scores)
    {
        if (length == 0)
            return;
        int padded = (length + KeyTile - 1) / KeyTile * KeyTile, column = head * headWidth;
        TransposeKeys(k + ((long)offset * width) + column, width, headWidth, length, padded, keys);
        float scale = 1f / MathF.Sqrt(headWidth);
        var queries = stackalloc float*[Queries];
        var inverse = stackalloc float[Queries];
        for (int i0 = 0; i0 < length; i0 += Queries)
        {
            for (int r = 0; r < Queries; r++)                                    // a short last group repeats its last query
                queries[r] = q + ((long)(offset + Math.Min(i0 + r, length - 1)) * width) + column;
            Scores(queries, keys, headWidth, padded, scale, scores);
            for (int r = 0; r < Queries; r++)
                inverse[r] = 1f / Softmax(scores + (r * padded), length, padded);
            int rows = Math.Min(Queries, length - i0);
            WeightedValues(scores, padded, v + ((long)offset * width) + column, width, length, headWidth, inverse,
                y + ((long)(offset + i0) * width) + column, rows);
        }
    }

    /// <summary>One head's keys of a window, transposed and zero-padded: keys [hd, padded] from k's rows
    /// [length, hd] (row stride <paramref name="width"/>): 8 × 8 AVX tiles (<see cref="SignHashKernel.Transpose8x8"/>)
    /// for whole groups of eight keys, element by element for the rest (hd is a multiple of 8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransposeKeys(float* k, int width, int headWidth, int length, int padded, float* keys)
    {
        int tiled = Avx.IsSupported && KernelSettings.Current.TiledKeyTranspose ? length / 8 * 8 : 0;
        for (int j = 0; j < tiled; j += 8)
            for (int c = 0; c < headWidth; c += 8)
                SignHashKernel.Transpose8x8(k + ((long)j * width) + c, width, keys + (c * padded) + j, padded);
        if (tiled > 0 && KernelSettings.Current.AttentionTails)
        {
            TransposeKeyTail(k, width, headWidth, length, padded, keys);      // the same floats
            return;
        }
        for (int c = 0; c < headWidth; c++)
        {
            float* row = keys + (c * padded);
            for (int j = tiled; j < length; j++)
                row[j] = k[((long)j * width) + c];
            new Span<float>(row + length, padded - length).Clear();
        }
    }

    /// <summary><see cref="Head"/> with AVX-512: eight queries at a time, scores in 8 × 32 tiles of sixteen 512-bit
    /// registers, the softmax's exp in 512-bit lanes and P·V in 8 × 32-column tiles; hd a multiple of 32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Head512(float* q, float* k, float* v, float* y, int width, int headWidth, int head, int offset, int length,
        float* keys, float* scores)
    {
        if (length == 0)
            return;
        int tile = KernelSettings.Current.ShortKeyTiles ? ShortKeyTile : KeyTile;
        int padded = (length + tile - 1) / tile * tile, column = head * headWidth;
        TransposeKeys(k + ((long)offset * width) + column, width, headWidth, length, padded, keys);
        float scale = 1f / MathF.Sqrt(headWidth);
        bool tails = KernelSettings.Current.AttentionTails;
        bool rowMax = tails && KernelSettings.Current.ScoresRowMax && KernelSettings.Current.LeanSoftmax && KernelSettings.Current.SoftmaxRows == 4;
        var tops = stackalloc float[WideQueries];
        var queries = stackalloc float*[WideQueries];
        var inverse = stackalloc float[WideQueries];
        for (int i0 = 0; i0 < length; i0 += WideQueries)
        {
            for (int r = 0; r < WideQueries; r++)                                // a short last group repeats its last query
                queries[r] = q + ((long)(offset + Math.Min(i0 + r, length - 1)) * width) + column;
            int rows = Math.Min(WideQueries, length - i0);
            bool four = tails && rows <= 4;                                      // a short last group: four queries, not eight
            if (rowMax && !four)
            {
                Scores512Max(queries, keys, headWidth, padded, length, scale, scores, tops);   // and each row's max, −∞ padding
                SoftmaxRowsWithTops(scores, padded, rows, tops, inverse);
            }
            else
                Softmax512Rows(queries, keys, headWidth, padded, length, scale, scores, inverse, rows, tails, four);
            for (int c = 0; c < headWidth; c += 32)
            {
                float* values = v + ((long)offset * width) + column + c, output = y + ((long)(offset + i0) * width) + column + c;
                if (four) WeightedValues512x4(scores, padded, values, width, length, inverse, output, rows);
                else WeightedValues512(scores, padded, values, width, length, inverse, output, rows);
            }
        }
    }

    /// <summary><see cref="Head512"/>'s scores and softmax of one group of queries without <see cref="Scores512Max"/>: the scores, the padded
    /// ones masked (with the window tails) or filled by each softmax, and the softmax one, two or four rows at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Softmax512Rows(float** queries, float* keys, int headWidth, int padded, int length, float scale, float* scores, float* inverse,
        int rows, bool tails, bool four)
    {
        if (four) Scores512x4(queries, keys, headWidth, padded, scale, scores);
        else Scores512(queries, keys, headWidth, padded, scale, scores);
        if (tails) MaskPaddedScores(scores, padded, length, rows);               // then the softmaxes fill nothing
        int fill = tails ? padded : length;
        int r0 = 0, together = KernelSettings.Current.LeanSoftmax ? KernelSettings.Current.SoftmaxRows : 1;
        if (together >= 4)
            for (; r0 + 4 <= rows; r0 += 4)
                SoftmaxQuad512(scores + (r0 * padded), padded, fill, inverse + r0);
        if (together >= 2)
            for (; r0 + 2 <= rows; r0 += 2)
                SoftmaxPair512(scores + (r0 * padded), scores + ((r0 + 1) * padded), fill, padded, inverse + r0);
        for (int r = r0; r < rows; r++)
            inverse[r] = 1f / Softmax512(scores + (r * padded), fill, padded);
    }

    /// <summary>scores[r, j] = q_r · key_j · scale for the eight queries and all L' keys (L' a multiple of 16): 32-key tiles,
    /// then a 16-key one where L' is an odd multiple of 16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores512(float** queries, float* keys, int headWidth, int padded, float scale, float* scores)
    {
        float* q0 = queries[0], q1 = queries[1], q2 = queries[2], q3 = queries[3], q4 = queries[4], q5 = queries[5], q6 = queries[6], q7 = queries[7];
        var s = Vector512.Create(scale);
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
            (a00 * s).Store(o); (a01 * s).Store(o + 16); o += padded;
            (a10 * s).Store(o); (a11 * s).Store(o + 16); o += padded;
            (a20 * s).Store(o); (a21 * s).Store(o + 16); o += padded;
            (a30 * s).Store(o); (a31 * s).Store(o + 16); o += padded;
            (a40 * s).Store(o); (a41 * s).Store(o + 16); o += padded;
            (a50 * s).Store(o); (a51 * s).Store(o + 16); o += padded;
            (a60 * s).Store(o); (a61 * s).Store(o + 16); o += padded;
            (a70 * s).Store(o); (a71 * s).Store(o + 16);
        }
        if (j < padded)
            ShortTileScores512(queries, keys + j, headWidth, padded, s, scores + j);
    }

    /// <summary>The last 16 keys of <see cref="Scores512"/> (keys padded to a multiple of 16): one register per query, each
    /// score the same FMA chain over c as in a 32-key tile, so the same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ShortTileScores512(float** queries, float* keys, int headWidth, int padded, Vector512<float> s, float* scores)
    {
        float* q0 = queries[0], q1 = queries[1], q2 = queries[2], q3 = queries[3], q4 = queries[4], q5 = queries[5], q6 = queries[6], q7 = queries[7];
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        float* key = keys;
        for (int c = 0; c < headWidth; c++, key += padded)
        {
            var k0 = Vector512.Load(key);                                        // keys j … j+15, element c
            a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q0[c]), k0, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Create(q1[c]), k0, a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Create(q2[c]), k0, a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Create(q3[c]), k0, a3);
            a4 = Vector512.FusedMultiplyAdd(Vector512.Create(q4[c]), k0, a4);
            a5 = Vector512.FusedMultiplyAdd(Vector512.Create(q5[c]), k0, a5);
            a6 = Vector512.FusedMultiplyAdd(Vector512.Create(q6[c]), k0, a6);
            a7 = Vector512.FusedMultiplyAdd(Vector512.Create(q7[c]), k0, a7);
        }
        (a0 * s).Store(scores); (a1 * s).Store(scores + padded); (a2 * s).Store(scores + (2 * padded)); (a3 * s).Store(scores + (3 * padded));
        (a4 * s).Store(scores + (4 * padded)); (a5 * s).Store(scores + (5 * padded)); (a6 * s).Store(scores + (6 * padded)); (a7 * s).Store(scores + (7 * padded));
    }

    /// <summary>y_r[0, 32) = inverse[r] · Σ_j p[r, j] · v_j[0, 32) for the first <paramref name="rows"/> of the eight queries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedValues512(float* p, int padded, float* values, int width, int length, float* inverse, float* y, int rows)
    {
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a61 = default, a70 = default, a71 = default;
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
            b = Vector512.Create(p[(4 * padded) + j]);
            a40 = Vector512.FusedMultiplyAdd(b, v0, a40); a41 = Vector512.FusedMultiplyAdd(b, v1, a41);
            b = Vector512.Create(p[(5 * padded) + j]);
            a50 = Vector512.FusedMultiplyAdd(b, v0, a50); a51 = Vector512.FusedMultiplyAdd(b, v1, a51);
            b = Vector512.Create(p[(6 * padded) + j]);
            a60 = Vector512.FusedMultiplyAdd(b, v0, a60); a61 = Vector512.FusedMultiplyAdd(b, v1, a61);
            b = Vector512.Create(p[(7 * padded) + j]);
            a70 = Vector512.FusedMultiplyAdd(b, v0, a70); a71 = Vector512.FusedMultiplyAdd(b, v1, a71);
        }
        Store512(y, width, 0, rows, inverse, a00, a01);
        Store512(y, width, 1, rows, inverse, a10, a11);
        Store512(y, width, 2, rows, inverse, a20, a21);
        Store512(y, width, 3, rows, inverse, a30, a31);
        Store512(y, width, 4, rows, inverse, a40, a41);
        Store512(y, width, 5, rows, inverse, a50, a51);
        Store512(y, width, 6, rows, inverse, a60, a61);
        Store512(y, width, 7, rows, inverse, a70, a71);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* y, int width, int r, int rows, float* inverse, Vector512<float> a0, Vector512<float> a1)
    {
        if (r >= rows)
            return;
        var s = Vector512.Create(inverse[r]);
        float* o = y + ((long)r * width);
        (a0 * s).Store(o); (a1 * s).Store(o + 16);
    }

    /// <summary>scores[r, j] = q_r · key_j · scale for the four queries and all L' keys.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores(float** queries, float* keys, int headWidth, int padded, float scale, float* scores)
    {
        float* q0 = queries[0], q1 = queries[1], q2 = queries[2], q3 = queries[3];
        var s = Vector256.Create(scale);
        for (int j = 0; j < padded; j += KeyTile)
        {
            Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
            Vector256<float> a30 = default, a31 = default, a32 = default, a33 = default;
            float* key = keys + j;
            for (int c = 0; c < headWidth; c++, key += padded)
            {
                var k0 = Vector256.Load(key);
                var k1 = Vector256.Load(key + 8);
                var k2 = Vector256.Load(key + 16);
                var k3 = Vector256.Load(key + 24);
                var b = Vector256.Create(q0[c]);
                a00 = Vector256.FusedMultiplyAdd(b, k0, a00); a01 = Vector256.FusedMultiplyAdd(b, k1, a01);
                a02 = Vector256.FusedMultiplyAdd(b, k2, a02); a03 = Vector256.FusedMultiplyAdd(b, k3, a03);
                b = Vector256.Create(q1[c]);
                a10 = Vector256.FusedMultiplyAdd(b, k0, a10); a11 = Vector256.FusedMultiplyAdd(b, k1, a11);
                a12 = Vector256.FusedMultiplyAdd(b, k2, a12); a13 = Vector256.FusedMultiplyAdd(b, k3, a13);
                b = Vector256.Create(q2[c]);
                a20 = Vector256.FusedMultiplyAdd(b, k0, a20); a21 = Vector256.FusedMultiplyAdd(b, k1, a21);
                a22 = Vector256.FusedMultiplyAdd(b, k2, a22); a23 = Vector256.FusedMultiplyAdd(b, k3, a23);
                b = Vector256.Create(q3[c]);
                a30 = Vector256.FusedMultiplyAdd(b, k0, a30); a31 = Vector256.FusedMultiplyAdd(b, k1, a31);
                a32 = Vector256.FusedMultiplyAdd(b, k2, a32); a33 = Vector256.FusedMultiplyAdd(b, k3, a33);
            }
            float* o = scores + j;
            (a00 * s).Store(o); (a01 * s).Store(o + 8); (a02 * s).Store(o + 16); (a03 * s).Store(o + 24);
            o += padded;
            (a10 * s).Store(o); (a11 * s).Store(o + 8); (a12 * s).Store(o + 16); (a13 * s).Store(o + 24);
            o += padded;
            (a20 * s).Store(o); (a21 * s).Store(o + 8); (a22 * s).Store(o + 16); (a23 * s).Store(o + 24);
            o += padded;
            (a30 * s).Store(o); (a31 * s).Store(o + 8); (a32 * s).Store(o + 16); (a33 * s).Store(o + 24);
        }
    }

    /// <summary>Replaces the first <paramref name="length"/> scores by exp(s − max) and the rest by 0; returns their sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Softmax(float* scores, int length, int padded)
    {
        for (int j = length; j < padded; j++)
            scores[j] = float.NegativeInfinity;
        var max = Vector256.Create(float.NegativeInfinity);
        for (int j = 0; j < padded; j += 8)
            max = Vector256.Max(max, Vector256.Load(scores + j));
        var top = Vector256.Create(HorizontalMax(max));
        var sum = Vector256<float>.Zero;
        for (int j = 0; j < padded; j += 8)
        {
            var e = SignHashKernel.ExpOfNonPositive(Vector256.Load(scores + j) - top);   // −∞ → 0
            e.Store(scores + j);
            sum += e;
        }
        return Vector256.Sum(sum);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float HorizontalMax(Vector256<float> v)
    {
        var m = Vector128.Max(v.GetLower(), v.GetUpper());
        return MathF.Max(MathF.Max(m[0], m[1]), MathF.Max(m[2], m[3]));
    }

    /// <summary>y_r = inverse[r] · Σ_j p[r, j] · v_j for the first <paramref name="rows"/> of the four queries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedValues(float* p, int padded, float* values, int width, int length, int headWidth, float* inverse,
        float* y, int rows)
    {
        float* p0 = p, p1 = p + padded, p2 = p + (2 * padded), p3 = p + (3 * padded);
        int c = 0;
        for (; c + 32 <= headWidth; c += 32)
        {
            Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
            Vector256<float> a30 = default, a31 = default, a32 = default, a33 = default;
            float* value = values + c;
            for (int j = 0; j < length; j++, value += width)
            {
                var v0 = Vector256.Load(value);
                var v1 = Vector256.Load(value + 8);
                var v2 = Vector256.Load(value + 16);
                var v3 = Vector256.Load(value + 24);
                var b = Vector256.Create(p0[j]);
                a00 = Vector256.FusedMultiplyAdd(b, v0, a00); a01 = Vector256.FusedMultiplyAdd(b, v1, a01);
                a02 = Vector256.FusedMultiplyAdd(b, v2, a02); a03 = Vector256.FusedMultiplyAdd(b, v3, a03);
                b = Vector256.Create(p1[j]);
                a10 = Vector256.FusedMultiplyAdd(b, v0, a10); a11 = Vector256.FusedMultiplyAdd(b, v1, a11);
                a12 = Vector256.FusedMultiplyAdd(b, v2, a12); a13 = Vector256.FusedMultiplyAdd(b, v3, a13);
                b = Vector256.Create(p2[j]);
                a20 = Vector256.FusedMultiplyAdd(b, v0, a20); a21 = Vector256.FusedMultiplyAdd(b, v1, a21);
                a22 = Vector256.FusedMultiplyAdd(b, v2, a22); a23 = Vector256.FusedMultiplyAdd(b, v3, a23);
                b = Vector256.Create(p3[j]);
                a30 = Vector256.FusedMultiplyAdd(b, v0, a30); a31 = Vector256.FusedMultiplyAdd(b, v1, a31);
                a32 = Vector256.FusedMultiplyAdd(b, v2, a32); a33 = Vector256.FusedMultiplyAdd(b, v3, a33);
            }
            Store(y + c, width, 0, rows, inverse, a00, a01, a02, a03);
            Store(y + c, width, 1, rows, inverse, a10, a11, a12, a13);
            Store(y + c, width, 2, rows, inverse, a20, a21, a22, a23);
            Store(y + c, width, 3, rows, inverse, a30, a31, a32, a33);
        }
        for (; c < headWidth; c += 8)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            float* value = values + c;
            for (int j = 0; j < length; j++, value += width)
            {
                var v0 = Vector256.Load(value);
                a0 = Vector256.FusedMultiplyAdd(Vector256.Create(p0[j]), v0, a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.Create(p1[j]), v0, a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.Create(p2[j]), v0, a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.Create(p3[j]), v0, a3);
            }
            if (rows > 0) (a0 * inverse[0]).Store(y + c);
            if (rows > 1) (a1 * inverse[1]).Store(y + width + c);
            if (rows > 2) (a2 * inverse[2]).Store(y + (2 * width) + c);
            if (rows > 3) (a3 * inverse[3]).Store(y + (3 * width) + c);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Store(float* y, int width, int r, int rows, float* inverse,
        Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
    {
        if (r >= rows)
            return;
        var s = Vector256.Create(inverse[r]);
        float* o = y + ((long)r * width);
        (a0 * s).Store(o); (a1 * s).Store(o + 8); (a2 * s).Store(o + 16); (a3 * s).Store(o + 24);
    }
}
