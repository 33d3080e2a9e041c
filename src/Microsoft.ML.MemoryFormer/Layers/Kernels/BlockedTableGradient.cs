using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The gather's table gradient written block by block, without sorting the hits (issue 16, item 2): a block is the
/// rows of <see cref="Plan.GroupChunks"/> consecutive chunks (each chunk owns 2^τ rows) times <see cref="Plan.TileWidth"/>
/// columns. Its gradient is accumulated in a small contiguous scratch that stays in L2 while every token's hits into
/// the block are added in token order, then streamed once into the row-major gradient buffer. The table keeps its
/// stored row-major layout [K·2^τ, h]; each block's tile of it is copied into a second contiguous scratch first.
/// </summary>
/// <remarks>
/// <para>Today's row pass (<see cref="TableGradientPass"/>) sorts the N·K hits by row and then reads, for every hit, a
/// gradient row ∂L/∂y[token] in random order: N·K random 2 KB reads at d = 512. Here each block streams ∂L/∂y's tile
/// column in token order instead, and the random accesses (the block's gradient and table rows) hit L2. <c>perf probe</c>
/// compares it with the same backward on a contiguous block layout and with today's kernel (docs/benchmarks.md, "Probe").</para>
/// <para>Threads own whole chunk groups (every column of their rows), so there are no atomics: a row's gradient is the
/// sum of its hits in ascending token order, as in the row pass (the same fp32 values, column for column where both use
/// fused multiply-adds); a hit's weight gradient is the sum of its per-tile inner products in ascending column order,
/// added to ∂L/∂w once; the squared norm sums per-(row, tile) values in group, tile, row order. Nothing depends on the
/// thread count.</para>
/// <para>Only for a Memory Layer's structured rows (chunk k reads rows [k·2^τ, (k+1)·2^τ), <see cref="PooledRows.Chunked"/>).</para>
/// </remarks>
internal static unsafe class BlockedTableGradient
{
    /// <summary>True when this machine runs the kernel (AVX-512); otherwise callers keep the row pass.</summary>
    public static bool IsAccelerated => Vector512.IsHardwareAccelerated;

    /// <summary>The block shape: columns per tile and chunks per group.</summary>
    /// <param name="TileWidth">Columns of one block (a multiple of 16 keeps every store vectorised).</param>
    /// <param name="GroupChunks">Chunks (of 2^τ rows each) per block.</param>
    public readonly record struct Plan(int TileWidth, int GroupChunks)
    {
        /// <summary>The default, from <c>perf probe</c>'s sweep at d = 512, τ = 8 (docs/benchmarks.md).</summary>
        public static Plan Default { get; } = new(64, 4);
    }

    /// <summary>
    /// Writes every row of one table's gradient <paramref name="grad"/> [R, h] (R = K·<paramref name="bucketRows"/>) and,
    /// when <paramref name="gw"/> is not null, adds each hit's inner product ⟨∂L/∂y[n], table[row]⟩ to ∂L/∂w [N, K].
    /// Returns ‖grad‖².
    /// </summary>
    /// <param name="rows">Global rows int32 [N, K] (flat), chunk k's in [k·B, (k+1)·B).</param>
    /// <param name="n">Tokens N.</param>
    /// <param name="k">Chunks K.</param>
    /// <param name="bucketRows">Rows per chunk B = 2^τ.</param>
    /// <param name="weights">[N, K].</param>
    /// <param name="table">[R, h].</param>
    /// <param name="dy">∂L/∂y [N, h].</param>
    /// <param name="h">Row width.</param>
    /// <param name="grad">The gradient [R, h] to write (every row).</param>
    /// <param name="gw">∂L/∂w [N, K] to add to, or null.</param>
    /// <param name="plan">Block shape.</param>
    /// <param name="update">Instead of writing <paramref name="grad"/> (then unused), apply this AdamW step to each block
    /// of <paramref name="table"/> while its gradient is in cache (<see cref="TableUpdate"/>); the block's inner products
    /// are taken before its update. The same bits as writing the gradient and stepping with <see cref="AdamWKernel"/>.</param>
    public static double Write(int[] rows, int n, int k, int bucketRows, float* weights, float* table, float* dy, int h,
        float* grad, float* gw, Plan plan, FusedStep? update = null)
    {
        int tileWidth = Math.Clamp(plan.TileWidth, 16, Math.Max(16, h)), groupChunks = Math.Clamp(plan.GroupChunks, 1, k);
        int groups = (k + groupChunks - 1) / groupChunks;
        var squares = ArrayPool<double>.Shared.Rent(groups);
        nint wp = (nint)weights, tp = (nint)table, dyp = (nint)dy, gp = (nint)grad, gwp = (nint)gw;
        var step = update ?? default;
        bool streaming = KernelSettings.Current.StreamingStores && ((nint)grad & 63) == 0 && h % 16 == 0 && tileWidth % 16 == 0;
        KernelParallel.For(groups, 2L * n * groupChunks * h, (first, last) =>
        {
            var offsets = ArrayPool<int>.Shared.Rent(n * groupChunks);
            var hitWeights = ArrayPool<float>.Shared.Rent(n * groupChunks);
            var dots = gwp != 0 ? ArrayPool<float>.Shared.Rent(n * groupChunks) : null;
            long scratchFloats = (long)groupChunks * bucketRows * tileWidth;
            // Two block-sized scratches: the gradient being accumulated and a contiguous copy of the table's tile (read
            // in place, its rows 4h bytes apart fall into a fraction of L2's sets and the tile would not stay there).
            float* scratch = ThreadScratch(2 * scratchFloats);
            try
            {
                fixed (int* o = offsets)
                fixed (float* hw = hitWeights)
                fixed (float* dt = dots)
                {
                    var block = new Block(k, bucketRows, h, (float*)tp, (float*)dyp, (float*)gp, o, hw, dt, scratch, scratch + scratchFloats, streaming,
                        update is not null, step);
                    for (int group = first; group < last; group++)
                        squares[group] = block.Run(rows, n, group * groupChunks, Math.Min(groupChunks, k - (group * groupChunks)),
                            tileWidth, (float*)wp, (float*)gwp);
                }
            }
            finally
            {
                ArrayPool<int>.Shared.Return(offsets);
                ArrayPool<float>.Shared.Return(hitWeights);
                if (dots is not null) ArrayPool<float>.Shared.Return(dots);
            }
            RowGradientKernel.Fence();
        });
        double total = 0;
        for (int i = 0; i < groups; i++)
            total += squares[i];
        ArrayPool<double>.Shared.Return(squares);
        return total;
    }

    [ThreadStatic]
    private static nint threadScratch;

    [ThreadStatic]
    private static long threadScratchFloats;

    /// <summary>
    /// This thread's scratch of at least <paramref name="floats"/> floats, 64-byte aligned, kept for the thread's life
    /// (≈ 0.5 MB at the default plan): allocated per call, the blocks' fresh pages cost page faults and kernel zeroing
    /// every backward (<c>perf train</c> counts them).
    /// </summary>
    private static float* ThreadScratch(long floats)
    {
        if (threadScratchFloats < floats)
        {
            if (threadScratch != 0)
                NativeMemory.AlignedFree((void*)threadScratch);
            threadScratch = (nint)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
            threadScratchFloats = floats;
        }
        return (float*)threadScratch;
    }

    /// <summary>An AdamW step fused into the backward: the table's moments (row-major like the table) and the coefficients.</summary>
    /// <param name="ExpAvg">The first moment.</param>
    /// <param name="ExpAvgSq">The second moment.</param>
    /// <param name="Coefficients">The step's coefficients, gradient scale included.</param>
    /// <param name="Bf16">The moments are bfloat16 (<see cref="Bf16Moments"/>); only the row pass takes them, the blocks need fp32.</param>
    /// <param name="Salt">The bf16 moments' rounding seed of this step and parameter (<see cref="Bf16Moments.Salt"/>).</param>
    public readonly record struct FusedStep(nint ExpAvg, nint ExpAvgSq, AdamWKernel.Coefficients Coefficients, bool Bf16 = false, uint Salt = 0);

    /// <summary>One worker's view of the tensors and its scratch buffers.</summary>
    private readonly struct Block(int k, int bucketRows, int h, float* table, float* dy, float* grad, int* offsets, float* hitWeights,
        float* dots, float* scratch, float* tableCopy, bool streaming, bool update, FusedStep step)
    {
        /// <summary>The gradient of chunks [kStart, kStart + chunks) over all columns; returns its squared norm.</summary>
        public double Run(int[] rows, int n, int kStart, int chunks, int tileWidth, float* weights, float* gw)
        {
            int rowBase = kStart * bucketRows, blockRows = chunks * bucketRows;
            // The group's hits, token-major, as row offsets within the block (read once, reused by every tile).
            for (int i = 0, p = 0; i < n; i++)
            {
                long at = ((long)i * k) + kStart;
                for (int j = 0; j < chunks; j++, p++)
                {
                    offsets[p] = rows[at + j] - rowBase;
                    hitWeights[p] = weights[at + j];
                }
            }
            double squares = 0;
            for (int c0 = 0; c0 < h; c0 += tileWidth)
            {
                int width = Math.Min(tileWidth, h - c0);
                new Span<float>(scratch, blockRows * width).Clear();
                float* tableTile = table + ((long)rowBase * h) + c0;
                for (int r = 0; r < blockRows; r++)
                    new Span<float>(tableTile + ((long)r * h), width).CopyTo(new Span<float>(tableCopy + (r * width), width));
                for (int i = 0, p = 0; i < n; i++)
                {
                    float* d = dy + ((long)i * h) + c0;
                    for (int j = 0; j < chunks; j++, p++)
                    {
                        int r = offsets[p];
                        float dot = width == 64
                            ? Hit64(scratch + (r * 64), tableCopy + (r * 64), d, hitWeights[p])
                            : Hit(scratch + (r * width), tableCopy + (r * width), d, hitWeights[p], width);
                        if (dots is not null)
                            dots[p] = c0 == 0 ? dot : dots[p] + dot;
                    }
                }
                if (update)
                {
                    // The block's AdamW step while its gradient is in cache; its inner products above used the old rows.
                    long at = ((long)rowBase * h) + c0;
                    float* m = (float*)step.ExpAvg + at, v = (float*)step.ExpAvgSq + at;
                    for (int r = 0; r < blockRows; r++)
                    {
                        long o = (long)r * h;
                        squares += SquaredNorm(scratch + (r * width), width);
                        AdamWKernel.UpdateRow(tableTile + o, scratch + (r * width), m + o, v + o, width, step.Coefficients);
                    }
                    continue;
                }
                float* gradTile = grad + ((long)rowBase * h) + c0;
                for (int r = 0; r < blockRows; r++)
                    squares += CopyOut(scratch + (r * width), gradTile + ((long)r * h), width, streaming);
            }
            if (dots is not null)
            {
                for (int i = 0, p = 0; i < n; i++)
                {
                    float* dst = gw + ((long)i * k) + kStart;
                    for (int j = 0; j < chunks; j++, p++)
                        dst[j] += dots[p];
                }
            }
            return squares;
        }
    }

    /// <summary>s += w·d over 64 columns; returns ⟨t, d⟩ over them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Hit64(float* s, float* t, float* d, float w)
    {
        var wv = Vector512.Create(w);
        Vector512<float> d0 = Vector512.Load(d), d1 = Vector512.Load(d + 16), d2 = Vector512.Load(d + 32), d3 = Vector512.Load(d + 48);
        Vector512.FusedMultiplyAdd(d0, wv, Vector512.Load(s)).Store(s);
        Vector512.FusedMultiplyAdd(d1, wv, Vector512.Load(s + 16)).Store(s + 16);
        Vector512.FusedMultiplyAdd(d2, wv, Vector512.Load(s + 32)).Store(s + 32);
        Vector512.FusedMultiplyAdd(d3, wv, Vector512.Load(s + 48)).Store(s + 48);
        var p = Vector512.FusedMultiplyAdd(d1, Vector512.Load(t + 16), d0 * Vector512.Load(t));
        var q = Vector512.FusedMultiplyAdd(d3, Vector512.Load(t + 48), d2 * Vector512.Load(t + 32));
        return Vector512.Sum(p + q);
    }

    /// <summary>s += w·d over <paramref name="width"/> columns (16 at a time, then scalar); returns ⟨t, d⟩ over them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Hit(float* s, float* t, float* d, float w, int width)
    {
        var wv = Vector512.Create(w);
        var acc = Vector512<float>.Zero;
        int c = 0;
        for (; c + 16 <= width; c += 16)
        {
            var dv = Vector512.Load(d + c);
            Vector512.FusedMultiplyAdd(dv, wv, Vector512.Load(s + c)).Store(s + c);
            acc = Vector512.FusedMultiplyAdd(dv, Vector512.Load(t + c), acc);
        }
        float dot = Vector512.Sum(acc);
        for (; c < width; c++)
        {
            s[c] += w * d[c];
            dot += d[c] * t[c];
        }
        return dot;
    }

    /// <summary>‖s‖² over <paramref name="width"/> floats, summed as <see cref="CopyOut"/> does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float SquaredNorm(float* s, int width)
    {
        var acc = Vector512<float>.Zero;
        int c = 0;
        for (; c + 16 <= width; c += 16)
        {
            var v = Vector512.Load(s + c);
            acc = Vector512.FusedMultiplyAdd(v, v, acc);
        }
        float squares = Vector512.Sum(acc);
        for (; c < width; c++)
            squares += s[c] * s[c];
        return squares;
    }

    /// <summary>Copies a finished gradient row tile to the buffer (past the cache when it can); returns its squared norm.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float CopyOut(float* s, float* dst, int width, bool streaming)
    {
        var acc = Vector512<float>.Zero;
        int c = 0;
        for (; c + 16 <= width; c += 16)
        {
            var v = Vector512.Load(s + c);
            acc = Vector512.FusedMultiplyAdd(v, v, acc);
            if (streaming)
                v.StoreAlignedNonTemporal(dst + c);
            else
                v.Store(dst + c);
        }
        float squares = Vector512.Sum(acc);
        for (; c < width; c++)
        {
            dst[c] = s[c];
            squares += s[c] * s[c];
        }
        return squares;
    }
}
