using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Both gradients of the weighted gather for one table row r in one pass over the row's hits:
/// <c>∂L/∂table[r] = Σ_hits w · g[token]</c> and, per hit, <c>∂L/∂w[pair] += ⟨g[token], table[r]⟩</c>.
/// </summary>
/// <remarks>
/// <para>The weight gradient used to be its own token-major pass: every (token, chunk) pair read a random 2 KB table row
/// (N·K rows from a table bigger than L2), and then the table gradient read the same N·K gradient rows again. Walking
/// the hits row by row instead keeps the table row's column tile in registers, so each hit reads its gradient row once
/// for both products: the random traffic halves and the table is read sequentially, once (<c>perf profile</c> times
/// both, with <see cref="KernelSettings.WeightGradientInRowPass"/> off for the old pass).</para>
/// <para>A hit's inner product is the sum of per-tile partial products, in ascending column order, added to
/// <c>∂L/∂w[pair]</c>, which only this row's thread writes: the result does not depend on the thread count.</para>
/// </remarks>
internal static unsafe class RowGradientKernel
{
    /// <summary>True when this machine runs the fused kernel (256-bit SIMD); otherwise callers keep the two-pass path.</summary>
    public static bool IsAccelerated => Vector256.IsHardwareAccelerated;

    /// <summary>
    /// dst[0..h) = Σ_j w[j] · grad[tokens[j]] and gw[pairs[j]] += ⟨grad[tokens[j]], row⟩ for the <paramref name="count"/> hits.
    /// </summary>
    /// <param name="row">The table row r [h].</param>
    /// <param name="grad">∂L/∂y [N, h].</param>
    /// <param name="h">The row width.</param>
    /// <param name="tokens">The token of each hit.</param>
    /// <param name="pairs">The flat (token, chunk) index of each hit, the position in <paramref name="gw"/>.</param>
    /// <param name="w">The weight of each hit.</param>
    /// <param name="count">Number of hits.</param>
    /// <param name="dst">The gradient row to write (written, not added).</param>
    /// <param name="gw">∂L/∂w [N·K], added to.</param>
    /// <param name="cached">Write <paramref name="dst"/> through the cache (it is read again at once) even where it could be streamed.</param>
    /// <returns>‖dst‖², taken from the registers (the row is not read back).</returns>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Run(float* row, float* grad, int h, int* tokens, int* pairs, float* w, int count, float* dst, float* gw, bool cached = false)
    {
        int c = 0;
        float squares = 0f;
        if (Vector512.IsHardwareAccelerated)
        {
            bool streaming = !cached && IsStreamable(dst, h);
            for (; c + 128 <= h; c += 128)
                squares += Tile512(row, grad, h, c, tokens, pairs, w, count, dst, gw, streaming);
        }
        for (; c + 32 <= h; c += 32)
            squares += Tile256(row, grad, h, c, tokens, pairs, w, count, dst, gw);
        if (c < h)
            squares += Tail(row, grad, h, c, tokens, pairs, w, count, dst, gw);
        return squares;
    }

    /// <summary>
    /// Writes zeros over a row of <paramref name="h"/> floats (a row without hits), bypassing the cache when it can:
    /// nothing reads the gradient again before the optimizer, after every other layer's backward.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Clear(float* dst, int h)
    {
        int c = 0;
        if (Vector512.IsHardwareAccelerated && IsStreamable(dst, h))
        {
            for (; c + 16 <= h; c += 16)
                Vector512<float>.Zero.StoreAlignedNonTemporal(dst + c);
        }
        new Span<float>(dst + c, h - c).Clear();
    }

    /// <summary>Orders this thread's non-temporal stores before what follows; call at the end of each worker's rows.</summary>
    public static void Fence()
    {
        if (Sse.IsSupported)
            Sse.StoreFence();
    }

    /// <summary>
    /// Whether a gradient row can be written with non-temporal stores (64-byte aligned, whole vectors). The table gradient
    /// is read next by the optimizer, after the rest of the backward has long evicted it, so ordinary stores only add a
    /// read of every line before it is written, a cost that is largest at small batches (<c>perf profile</c> measures it
/// with <see cref="KernelSettings.StreamingStores"/> off).
    /// </summary>
    internal static bool IsStreamable(float* dst, int h) => KernelSettings.Current.StreamingStores && ((nint)dst & 63) == 0 && h % 16 == 0;

    /// <summary>A 128-column tile with AVX-512: the table row's tile, the gradient sum and the hit's gradient tile take 24 registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Tile512(float* row, float* grad, int h, int c, int* tokens, int* pairs, float* w, int count, float* dst, float* gw,
        bool streaming)
    {
        float* t = row + c;
        Vector512<float> t0 = Vector512.Load(t), t1 = Vector512.Load(t + 16), t2 = Vector512.Load(t + 32), t3 = Vector512.Load(t + 48),
            t4 = Vector512.Load(t + 64), t5 = Vector512.Load(t + 80), t6 = Vector512.Load(t + 96), t7 = Vector512.Load(t + 112);
        Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int j = 0; j < count; j++)
        {
            float* g = grad + ((long)tokens[j] * h) + c;
            var wj = Vector512.Create(w[j]);
            Vector512<float> g0 = Vector512.Load(g), g1 = Vector512.Load(g + 16), g2 = Vector512.Load(g + 32), g3 = Vector512.Load(g + 48),
                g4 = Vector512.Load(g + 64), g5 = Vector512.Load(g + 80), g6 = Vector512.Load(g + 96), g7 = Vector512.Load(g + 112);
            a0 = Vector512.FusedMultiplyAdd(g0, wj, a0);
            a1 = Vector512.FusedMultiplyAdd(g1, wj, a1);
            a2 = Vector512.FusedMultiplyAdd(g2, wj, a2);
            a3 = Vector512.FusedMultiplyAdd(g3, wj, a3);
            a4 = Vector512.FusedMultiplyAdd(g4, wj, a4);
            a5 = Vector512.FusedMultiplyAdd(g5, wj, a5);
            a6 = Vector512.FusedMultiplyAdd(g6, wj, a6);
            a7 = Vector512.FusedMultiplyAdd(g7, wj, a7);
            var p = Vector512.FusedMultiplyAdd(g4, t4, Vector512.FusedMultiplyAdd(g1, t1, g0 * t0));
            var q = Vector512.FusedMultiplyAdd(g5, t5, Vector512.FusedMultiplyAdd(g3, t3, g2 * t2));
            p = Vector512.FusedMultiplyAdd(g6, t6, p);
            q = Vector512.FusedMultiplyAdd(g7, t7, q);
            gw[pairs[j]] += TreeSum(p + q);
        }
        return StoreTile(dst + c, streaming, a0, a1, a2, a3, a4, a5, a6, a7);
    }

    /// <summary>Writes a 128-column tile's gradient sums to <paramref name="d"/> and returns their squared norm (the
    /// clip's share of the tile); shared by the fp32 and bf16 row kernels so both keep the same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float StoreTile(float* d, bool streaming, Vector512<float> a0, Vector512<float> a1, Vector512<float> a2,
        Vector512<float> a3, Vector512<float> a4, Vector512<float> a5, Vector512<float> a6, Vector512<float> a7)
    {
        Store(a0, d, streaming);
        Store(a1, d + 16, streaming);
        Store(a2, d + 32, streaming);
        Store(a3, d + 48, streaming);
        Store(a4, d + 64, streaming);
        Store(a5, d + 80, streaming);
        Store(a6, d + 96, streaming);
        Store(a7, d + 112, streaming);
        var s0 = Vector512.FusedMultiplyAdd(a1, a1, a0 * a0);
        var s1 = Vector512.FusedMultiplyAdd(a3, a3, a2 * a2);
        s0 = Vector512.FusedMultiplyAdd(a5, a5, Vector512.FusedMultiplyAdd(a4, a4, s0));
        s1 = Vector512.FusedMultiplyAdd(a7, a7, Vector512.FusedMultiplyAdd(a6, a6, s1));
        return Vector512.Sum(s0 + s1);
    }

    /// <summary>
    /// <see cref="Vector512.Sum{T}(Vector512{T})"/> with the same bits in fewer instructions: the JIT sums each 128-bit
    /// quarter on its own (two shuffles, two adds, three extracts per vector, 22 instructions in all), while the same
    /// tree, adjacent pairs first, then pairs of pairs, then quarters, then halves, takes four shuffles and four adds on
    /// the whole register. Float addition is commutative, so only the tree's shape fixes the result.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float TreeSum(Vector512<float> v)
    {
        if (!Avx512F.IsSupported)
            return Vector512.Sum(v);
        var x = Avx512F.Add(Avx512F.Permute4x32(v, 0b10_11_00_01), v);              // lanes 2i: v[2i] + v[2i+1]
        x = Avx512F.Add(Avx512F.Permute4x32(x, 0b01_00_11_10), x);                  // lanes 4i: the sum of quarter i
        x = Avx512F.Add(x, Avx512F.Shuffle4x128(x, x, 0b10_11_00_01));              // lanes 0 and 8: quarters 0+1 and 2+3
        return x.ToScalar() + x.GetUpper().ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Store(Vector512<float> value, float* destination, bool streaming)
    {
        if (streaming)
            value.StoreAlignedNonTemporal(destination);
        else
            value.Store(destination);
    }

    /// <summary>A 32-column tile with 256-bit vectors (AVX2 machines, and the rest of a width that is not a multiple of 128).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Tile256(float* row, float* grad, int h, int c, int* tokens, int* pairs, float* w, int count, float* dst, float* gw)
    {
        float* t = row + c;
        Vector256<float> t0 = Vector256.Load(t), t1 = Vector256.Load(t + 8), t2 = Vector256.Load(t + 16), t3 = Vector256.Load(t + 24);
        Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
        for (int j = 0; j < count; j++)
        {
            float* g = grad + ((long)tokens[j] * h) + c;
            var wj = Vector256.Create(w[j]);
            Vector256<float> g0 = Vector256.Load(g), g1 = Vector256.Load(g + 8), g2 = Vector256.Load(g + 16), g3 = Vector256.Load(g + 24);
            a0 = Vector256.FusedMultiplyAdd(g0, wj, a0);
            a1 = Vector256.FusedMultiplyAdd(g1, wj, a1);
            a2 = Vector256.FusedMultiplyAdd(g2, wj, a2);
            a3 = Vector256.FusedMultiplyAdd(g3, wj, a3);
            var p = Vector256.FusedMultiplyAdd(g1, t1, g0 * t0);
            var q = Vector256.FusedMultiplyAdd(g3, t3, g2 * t2);
            gw[pairs[j]] += Vector256.Sum(p + q);
        }
        float* d = dst + c;
        a0.Store(d);
        a1.Store(d + 8);
        a2.Store(d + 16);
        a3.Store(d + 24);
        var s0 = Vector256.FusedMultiplyAdd(a1, a1, a0 * a0);
        var s1 = Vector256.FusedMultiplyAdd(a3, a3, a2 * a2);
        return Vector256.Sum(s0 + s1);
    }

    /// <summary>The last h mod 32 columns, scalar.</summary>
    private static float Tail(float* row, float* grad, int h, int c, int* tokens, int* pairs, float* w, int count, float* dst, float* gw)
    {
        for (int i = c; i < h; i++)
            dst[i] = 0f;
        for (int j = 0; j < count; j++)
        {
            float* g = grad + ((long)tokens[j] * h);
            float dot = 0f;
            for (int i = c; i < h; i++)
            {
                dst[i] += w[j] * g[i];
                dot += g[i] * row[i];
            }
            gw[pairs[j]] += dot;
        }
        float squares = 0f;
        for (int i = c; i < h; i++)
            squares += dst[i] * dst[i];
        return squares;
    }
}
