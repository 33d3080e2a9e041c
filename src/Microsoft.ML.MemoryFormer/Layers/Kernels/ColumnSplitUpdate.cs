using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// <see cref="TableGradientPass.UpdateAll"/> with the table's columns, not its rows, split between the workers
/// (<see cref="KernelSettings.ColumnSplitUpdate"/>): each worker walks every row, but only its own 128-column tiles, so it reads
/// only its slice of each hit's ∂L/∂y row. At d = 512 and N = 2048, ∂L/∂y is 4 MB, twice a core's L2; split in two, each core's
/// 2 MB slice can stay in its own L2 instead of every hit going to the L3 (issue 16, "Training at d = 512").
/// </summary>
/// <remarks>
/// The same bits as the row split: a row's tiles compute exactly what <see cref="RowGradientKernel"/>'s 128-column tiles compute
/// (the same operations on the same values); what the row pass adds to ∂L/∂w per tile, in ascending tile order, is kept per
/// hit and tile and added afterwards in that order (each (token, chunk) pair hits one row of a table, so its adds are exactly
/// those); each row's squared norm is the float sum of its tiles' squares in tile order, as <see cref="RowGradientKernel.Run"/>
/// takes it; the AdamW step is elementwise, with each element's own index for the bf16 rounding noise.
/// </remarks>
internal static unsafe class ColumnSplitUpdate
{
    private const int Tile = 128;

    /// <summary>Whether the pass can take the column split: plain fp32 ∂L/∂y and table, no bf16 or tile-major copies, bf16 moments,
    /// AVX-512, two or more workers, and the width's 128-column tiles shared evenly between them.</summary>
    public static bool Applies(TableGradientPass.RowPass pass, BlockedTableGradient.FusedStep step, int workers) =>
        Vector512.IsHardwareAccelerated && workers > 1 && step.Bf16 && pass.GradOut16 == 0 && pass.Table16 == 0 && pass.TileMajor == 0
        && !pass.RoundDots && pass.WeightGradient != 0 && pass.Width % (Tile * workers) == 0;

    /// <summary>The fused row pass and AdamW over every row; returns the gradient's squared norm, as <see cref="TableGradientPass.UpdateAll"/>.</summary>
    public static double Run(TableGradientPass.RowPass pass, int rowCount, BlockedTableGradient.FusedStep step, int workers)
    {
        int h = pass.Width, tiles = h / Tile, pairs = pass.Hits.Pairs;
        var dots = ArrayPool<float>.Shared.Rent(tiles * Math.Max(1, pairs));            // [tile][hit]: ⟨∂L/∂y tile, table tile⟩ of each hit
        var squares = ArrayPool<float>.Shared.Rent(tiles * rowCount);                     // [tile][row]: each row's tile squares
        try
        {
            fixed (float* dotPtr = dots, squarePtr = squares)
            {
                nint d = (nint)dotPtr, q = (nint)squarePtr;
                KernelParallel.For(workers, long.MaxValue / workers, (first, last) =>
                {
                    for (int part = first; part < last; part++)
                        Part(pass, rowCount, step, part * (tiles / workers), (part + 1) * (tiles / workers), (float*)d, (float*)q);
                });
                AddDots(pass, tiles, (float*)d);
                double total = 0;
                for (int r = 0; r < rowCount; r++)
                {
                    float s = 0f;                                                         // RowGradientKernel.Run's order: 0 + tile 0 + tile 1 + …
                    for (int t = 0; t < tiles; t++)
                        s += ((float*)q)[((long)t * rowCount) + r];
                    total += s;
                }
                return total;
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(dots);
            ArrayPool<float>.Shared.Return(squares);
        }
    }

    /// <summary>One worker's tiles [<paramref name="firstTile"/>, <paramref name="endTile"/>) of every row: gradient slice, dots, squares, update.</summary>
    private static void Part(TableGradientPass.RowPass pass, int rowCount, BlockedTableGradient.FusedStep step, int firstTile, int endTile,
        float* dots, float* squares)
    {
        int h = pass.Width, c0 = firstTile * Tile, width = (endTile - firstTile) * Tile, pairs = pass.Hits.Pairs;
        var settings = KernelSettings.Current;
        bool prefetchHits = pass.Prefetching;
        int ahead = Sse.IsSupported && settings.PrefetchUpdateRows ? settings.UpdatePrefetchAhead : 0;
        var row = new float[h + 16];
        var hits = pass.Hits;
        fixed (float* g = row)
        fixed (int* starts = hits.Starts, tokens = hits.Tokens)
        fixed (float* weights = hits.Weights)
        {
            float* table = (float*)pass.Table, grad = (float*)pass.GradOut;
            for (int r = 0; r < rowCount; r++)
            {
                long o = (long)r * h;
                int count = pass.HitCount(r), s = count == 0 ? 0 : starts[r];
                if (prefetchHits && r + 1 < rowCount)
                {
                    int next = pass.HitCount(r + 1), ns = next == 0 ? 0 : starts[r + 1];
                    for (int j = 0; j < next; j++)
                        Sse.Prefetch0(grad + ((long)tokens[ns + j] * h) + c0);
                }
                if (ahead > 0 && r + ahead < rowCount)
                    PrefetchSlices(table, step, o + ((long)ahead * h) + c0, width);
                for (int t = firstTile; t < endTile; t++)
                {
                    int c = t * Tile;
                    squares[((long)t * rowCount) + r] = count == 0
                        ? Clear(g + c)
                        : TileDots(table + o + c, grad + c, h, tokens + s, weights + s, count, g + c, dots + ((long)t * pairs) + s);
                }
                Bf16Moments.UpdateRow(table + o + c0, g + c0, (ushort*)step.ExpAvg + o + c0, (ushort*)step.ExpAvgSq + o + c0, width,
                    step.Coefficients, o + c0, step.Salt);
            }
        }
    }

    /// <summary>∂L/∂w[pair] += the pair's hit's tile dots in ascending tile order, parallel over hits (each pair is one hit).</summary>
    private static void AddDots(TableGradientPass.RowPass pass, int tiles, float* dots)
    {
        int pairs = pass.Hits.Pairs, first = pass.Hits.Starts[0], end = pass.Hits.Starts[pass.Hits.RowCount];
        nint gw = pass.WeightGradient, d = (nint)dots;
        var pairIndex = pass.Hits.PairIndex;
        KernelParallel.For(end - first, tiles, (start, stop) =>
        {
            fixed (int* index = pairIndex)
            {
                for (int e = first + start; e < first + stop; e++)
                {
                    float* target = (float*)gw + index[e];
                    float sum = *target;
                    for (int t = 0; t < tiles; t++)
                        sum += ((float*)d)[((long)t * pairs) + e];
                    *target = sum;
                }
            }
        });
    }

    /// <summary>Zeros a 128-column tile of a row without hits; its squares are 0.</summary>
    private static float Clear(float* dst)
    {
        new Span<float>(dst, Tile).Clear();
        return 0f;
    }

    private static void PrefetchSlices(float* table, BlockedTableGradient.FusedStep step, long o, int width)
    {
        for (int l = 0; l < width * sizeof(float); l += 64)
            Sse.Prefetch1((byte*)(table + o) + l);
        for (int l = 0; l < width * sizeof(ushort); l += 64)
        {
            Sse.Prefetch1((byte*)((ushort*)step.ExpAvg + o) + l);
            Sse.Prefetch1((byte*)((ushort*)step.ExpAvgSq + o) + l);
        }
    }

    /// <summary>
    /// One 128-column tile of a row with hits: <see cref="RowGradientKernel"/>'s 512-bit tile (the same operations, so the same
    /// values), except that each hit's dot goes to <paramref name="dots"/>[j] instead of being added to ∂L/∂w at once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float TileDots(float* t, float* grad, int h, int* tokens, float* w, int count, float* dst, float* dots)
    {
        Vector512<float> t0 = Vector512.Load(t), t1 = Vector512.Load(t + 16), t2 = Vector512.Load(t + 32), t3 = Vector512.Load(t + 48),
            t4 = Vector512.Load(t + 64), t5 = Vector512.Load(t + 80), t6 = Vector512.Load(t + 96), t7 = Vector512.Load(t + 112);
        Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int j = 0; j < count; j++)
        {
            float* g = grad + ((long)tokens[j] * h);
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
            dots[j] = RowGradientKernel.TreeSum(p + q);
        }
        return RowGradientKernel.StoreTile(dst, streaming: false, a0, a1, a2, a3, a4, a5, a6, a7);
    }
}
