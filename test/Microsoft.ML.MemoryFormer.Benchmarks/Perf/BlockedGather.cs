using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// A candidate Memory Layer gather and its backward on a column-tiled table, for <c>perf probe</c> only (issue 16,
/// item 1): the table [K·2^τ, h] is stored as <c>[K/G][h/W][G·2^τ][W]</c>, so one block (G chunks' rows, W columns)
/// is one contiguous region meant to stay in L2 while every token's G hits into it are served.
/// </summary>
/// <remarks>
/// <para>Forward: the column tiles are split between threads (each owns its output columns: no atomics, fixed order);
/// for each block, all tokens are streamed, <c>interleave</c> tokens at a time, each keeping its 32-column slice in
/// registers across its G hits before adding it into its output row. W = 64 or 128 walks a block in 32-column slices.</para>
/// <para>Backward: each thread owns column tiles of the table gradient; per block, the gradient block is zeroed and then
/// accumulated in place (it stays in L2), one token at a time: <c>dT[r] += w·dy</c> and the tile's part of
/// <c>⟨T[r], dy⟩</c>, kept per tile and summed over tiles in ascending order afterwards (deterministic).</para>
/// <para>Rows are the global rows of the reference kernel (chunk k's rows start at k·2^τ). Not wired into the library.</para>
/// </remarks>
internal static unsafe class BlockedGather
{
    /// <summary>Copies a row-major table [K·2^τ, h] into the tiled layout.</summary>
    public static void ToTiled(float* src, float* dst, int chunks, int bucketRows, int h, int w, int g)
    {
        int tiles = h / w, blockRows = g * bucketRows;
        for (int group = 0; group < chunks / g; group++)
            for (int tile = 0; tile < tiles; tile++)
                for (int r = 0; r < blockRows; r++)
                {
                    float* s = src + ((long)((group * blockRows) + r) * h) + (tile * w);
                    float* d = dst + BlockOffset(group, tile, tiles, blockRows, w) + ((long)r * w);
                    new Span<float>(s, w).CopyTo(new Span<float>(d, w));
                }
    }

    /// <summary>The tiled gradient back in row-major order [K·2^τ, h], to compare with the reference.</summary>
    public static void FromTiled(float* src, float* dst, int chunks, int bucketRows, int h, int w, int g)
    {
        int tiles = h / w, blockRows = g * bucketRows;
        for (int group = 0; group < chunks / g; group++)
            for (int tile = 0; tile < tiles; tile++)
                for (int r = 0; r < blockRows; r++)
                {
                    float* s = src + BlockOffset(group, tile, tiles, blockRows, w) + ((long)r * w);
                    float* d = dst + ((long)((group * blockRows) + r) * h) + (tile * w);
                    new Span<float>(s, w).CopyTo(new Span<float>(d, w));
                }
    }

    private static long BlockOffset(int group, int tile, int tiles, int blockRows, int w) =>
        (((long)group * tiles) + tile) * blockRows * w;

    /// <summary>y [N, h] = Σ_k weights[n, k] · T[rows[n, k]] over the tiled table; tiles split between threads.</summary>
    public static void Forward(float* table, int* rows, float* weights, int n, int chunks, int bucketRows, int h, int w, int g,
        int interleave, float* y)
    {
        int tiles = h / w, blockRows = g * bucketRows;
        nint tp = (nint)table, rp = (nint)rows, wp = (nint)weights, yp = (nint)y;
        Layers.Kernels.KernelParallel.For(tiles, (long)n * chunks * w, (first, last) =>
        {
            for (int tile = first; tile < last; tile++)
                for (int group = 0; group < chunks / g; group++)
                {
                    float* block = (float*)tp + BlockOffset(group, tile, tiles, blockRows, w);
                    int kStart = group * g, rowBase = group * blockRows;
                    for (int s = 0; s < w; s += 32)
                    {
                        int i = 0;
                        if (interleave >= 4)
                            for (; i + 4 <= n; i += 4)
                                Slice4(block, w, s, (int*)rp, (float*)wp, chunks, kStart, g, rowBase, (float*)yp, h, (tile * w) + s, i, group == 0);
                        for (; i < n; i++)
                            Slice1(block, w, s, (int*)rp, (float*)wp, chunks, kStart, g, rowBase, (float*)yp, h, (tile * w) + s, i, group == 0);
                    }
                }
        });
    }

    /// <summary>
    /// <see cref="Forward"/> on today's row-major table [K·2^τ, h]: the same blocks (G chunks' rows × W columns), read
    /// with row stride h instead of W (the step-1 check of issue 16, item 2: does the contiguous layout matter?).
    /// </summary>
    public static void ForwardRowMajor(float* table, int* rows, float* weights, int n, int chunks, int bucketRows, int h, int w, int g,
        int interleave, float* y)
    {
        int tiles = h / w, blockRows = g * bucketRows;
        nint tp = (nint)table, rp = (nint)rows, wp = (nint)weights, yp = (nint)y;
        Layers.Kernels.KernelParallel.For(tiles, (long)n * chunks * w, (first, last) =>
        {
            for (int tile = first; tile < last; tile++)
                for (int group = 0; group < chunks / g; group++)
                {
                    int kStart = group * g, rowBase = group * blockRows;
                    float* block = (float*)tp + ((long)rowBase * h) + (tile * w);
                    for (int s = 0; s < w; s += 32)
                    {
                        int i = 0;
                        if (interleave >= 4)
                            for (; i + 4 <= n; i += 4)
                                Slice4(block, h, s, (int*)rp, (float*)wp, chunks, kStart, g, rowBase, (float*)yp, h, (tile * w) + s, i, group == 0);
                        for (; i < n; i++)
                            Slice1(block, h, s, (int*)rp, (float*)wp, chunks, kStart, g, rowBase, (float*)yp, h, (tile * w) + s, i, group == 0);
                    }
                }
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Slice1(float* block, int w, int s, int* rows, float* weights, int chunks, int kStart, int g, int rowBase,
        float* y, int h, int col, int token, bool first)
    {
        int* r = rows + ((long)token * chunks) + kStart;
        float* wt = weights + ((long)token * chunks) + kStart;
        float* dst = y + ((long)token * h) + col;
        Vector512<float> a0 = first ? Vector512<float>.Zero : Vector512.Load(dst), a1 = first ? Vector512<float>.Zero : Vector512.Load(dst + 16);
        for (int j = 0; j < g; j++)
        {
            float* p = block + ((long)(r[j] - rowBase) * w) + s;
            var wj = Vector512.Create(wt[j]);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(p), wj, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(p + 16), wj, a1);
        }
        a0.Store(dst);
        a1.Store(dst + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Slice4(float* block, int w, int s, int* rows, float* weights, int chunks, int kStart, int g, int rowBase,
        float* y, int h, int col, int token, bool first)
    {
        int* r0 = rows + ((long)token * chunks) + kStart, r1 = r0 + chunks, r2 = r1 + chunks, r3 = r2 + chunks;
        float* w0 = weights + ((long)token * chunks) + kStart, w1 = w0 + chunks, w2 = w1 + chunks, w3 = w2 + chunks;
        float* d0 = y + ((long)token * h) + col, d1 = d0 + h, d2 = d1 + h, d3 = d2 + h;
        var z = Vector512<float>.Zero;
        Vector512<float> a0 = first ? z : Vector512.Load(d0), a1 = first ? z : Vector512.Load(d0 + 16),
            b0 = first ? z : Vector512.Load(d1), b1 = first ? z : Vector512.Load(d1 + 16),
            c0 = first ? z : Vector512.Load(d2), c1 = first ? z : Vector512.Load(d2 + 16),
            e0 = first ? z : Vector512.Load(d3), e1 = first ? z : Vector512.Load(d3 + 16);
        for (int j = 0; j < g; j++)
        {
            float* p0 = block + ((long)(r0[j] - rowBase) * w) + s, p1 = block + ((long)(r1[j] - rowBase) * w) + s,
                p2 = block + ((long)(r2[j] - rowBase) * w) + s, p3 = block + ((long)(r3[j] - rowBase) * w) + s;
            Vector512<float> v0 = Vector512.Create(w0[j]), v1 = Vector512.Create(w1[j]), v2 = Vector512.Create(w2[j]), v3 = Vector512.Create(w3[j]);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(p0), v0, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(p0 + 16), v0, a1);
            b0 = Vector512.FusedMultiplyAdd(Vector512.Load(p1), v1, b0);
            b1 = Vector512.FusedMultiplyAdd(Vector512.Load(p1 + 16), v1, b1);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Load(p2), v2, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Load(p2 + 16), v2, c1);
            e0 = Vector512.FusedMultiplyAdd(Vector512.Load(p3), v3, e0);
            e1 = Vector512.FusedMultiplyAdd(Vector512.Load(p3 + 16), v3, e1);
        }
        a0.Store(d0);
        a1.Store(d0 + 16);
        b0.Store(d1);
        b1.Store(d1 + 16);
        c0.Store(d2);
        c1.Store(d2 + 16);
        e0.Store(d3);
        e1.Store(d3 + 16);
    }

    /// <summary>
    /// The tiled table gradient <paramref name="gradTable"/> (every block written) and the weight gradient
    /// <paramref name="gradWeights"/> [N, K] from dy [N, h]; <paramref name="partial"/> holds (h/W)·N·K floats.
    /// </summary>
    public static void Backward(float* table, int* rows, float* weights, float* dy, int n, int chunks, int bucketRows, int h, int w,
        int g, float* gradTable, float* partial, float* gradWeights)
    {
        int tiles = h / w, blockRows = g * bucketRows;
        nint tp = (nint)table, rp = (nint)rows, wp = (nint)weights, dyp = (nint)dy, gtp = (nint)gradTable, pp = (nint)partial;
        Layers.Kernels.KernelParallel.For(tiles, (long)n * chunks * w * 2, (first, last) =>
        {
            for (int tile = first; tile < last; tile++)
                for (int group = 0; group < chunks / g; group++)
                {
                    long offset = BlockOffset(group, tile, tiles, blockRows, w);
                    float* block = (float*)tp + offset, grad = (float*)gtp + offset;
                    new Span<float>(grad, blockRows * w).Clear();
                    int kStart = group * g, rowBase = group * blockRows;
                    float* dots = (float*)pp + ((long)tile * n * chunks);
                    for (int i = 0; i < n; i++)
                    {
                        int* r = (int*)rp + ((long)i * chunks) + kStart;
                        float* wt = (float*)wp + ((long)i * chunks) + kStart;
                        float* d = (float*)dyp + ((long)i * h) + (tile * w);
                        for (int j = 0; j < g; j++)
                        {
                            long at = (long)(r[j] - rowBase) * w;
                            float* q = block + at, p = grad + at;
                            var wj = Vector512.Create(wt[j]);
                            var dot = Vector512<float>.Zero;
                            for (int c = 0; c < w; c += 16)
                            {
                                var dv = Vector512.Load(d + c);
                                dot = Vector512.FusedMultiplyAdd(Vector512.Load(q + c), dv, dot);
                                Vector512.FusedMultiplyAdd(dv, wj, Vector512.Load(p + c)).Store(p + c);
                            }
                            dots[((long)i * chunks) + kStart + j] = Vector512.Sum(dot);
                        }
                    }
                }
        });
        nint gwp = (nint)gradWeights;
        Layers.Kernels.KernelParallel.For(n, (long)chunks * tiles, (start, end) =>
        {
            long from = (long)start * chunks, to = (long)end * chunks, stride = (long)n * chunks;
            for (long e = from; e < to; e++)
            {
                float sum = 0f;
                for (int tile = 0; tile < tiles; tile++)
                    sum += ((float*)pp)[(tile * stride) + e];
                ((float*)gwp)[e] = sum;
            }
        });
    }
}
