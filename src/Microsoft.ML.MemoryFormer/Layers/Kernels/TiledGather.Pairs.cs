using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The walk over two adjacent 16-column tiles at once (<see cref="Plan.PairTiles"/>): each chunk group's rows of both tiles are copied
/// from the row-major table (the strided plan) or from the tile-major copy into one [rows][32] scratch (128 contiguous bytes a row), and each hit's row index and weight,
/// read once, feed two fused multiply-adds, one per tile: two loads a tile-hit instead of three. Every output column is the same chain as
/// in <see cref="GatherTile"/> (bias or zero, then the chunks in ascending order, the partial sum kept in fp32 between groups), so the bits
/// do not change.
/// </summary>
internal static unsafe partial class TiledGather
{
    /// <summary>Every table's tiles in pairs (a last odd or partial tile alone through <see cref="GatherTile"/>), split between threads; read
    /// from the row-major tables, or (<paramref name="tileMajor"/> not 0, one table) from its tile-major copy [h/16][R][16].</summary>
    private static void RunPairs(Inputs inputs, nint[] tables, int[] widths, nint[] biases, nint[] outputs, Cut cut, Cut pairCut, nint tileMajor = 0)
    {
        int n = cut.N, k = cut.K;
        var firstItem = new int[tables.Length + 1];
        for (int t = 0; t < tables.Length; t++)
            firstItem[t + 1] = firstItem[t] + ((Tiles(widths[t]) + 1) / 2);
        long scratchFloats = Math.Max((pairCut.GroupRows * 2 * TileWidth) + ((long)n * 2 * TileWidth), (cut.GroupRows * TileWidth) + ((long)n * TileWidth));
        KernelParallel.For(firstItem[^1], (long)n * k * 2 * TileWidth, (start, end) =>
        {
            float* scratch = ThreadScratch(scratchFloats);
            for (int item = start; item < end; item++)
            {
                int t = Array.FindLastIndex(firstItem, f => f <= item), h = widths[t], tile = 2 * (item - firstItem[t]);
                if ((tile + 2) * TileWidth <= h)
                {
                    GatherTilePair(inputs, tables[t], h, biases[t], outputs[t], tile, pairCut, scratch, (float*)tileMajor);
                    continue;
                }
                GatherTile(inputs, tables[t], h, biases[t], outputs[t], tile, cut, scratch, tileMajor, tileMajor != 0);
                if (tile + 1 < Tiles(h))
                    GatherTile(inputs, tables[t], h, biases[t], outputs[t], tile + 1, cut, scratch, tileMajor, tileMajor != 0);
            }
        });
    }

    /// <summary>Output tiles <paramref name="tile"/> and the next (both whole) of one table: every chunk group's pass over all tokens.
    /// <paramref name="scratch"/> holds the group's [rows][32] copy (from the row-major table, or from the tile-major copy
    /// <paramref name="tileMajor"/> when not null), then the tokens' [N][32] partial sums.</summary>
    private static void GatherTilePair(Inputs inputs, nint table, int h, nint bias, nint output, int tile, Cut cut, float* scratch, float* tileMajor)
    {
        int c0 = tile * TileWidth;
        float* partial = scratch + (cut.GroupRows * 2 * TileWidth);
        var biasPair = stackalloc float[2 * TileWidth];
        for (int c = 0; c < 2 * TileWidth; c++)
            biasPair[c] = bias != 0 ? ((float*)bias)[c0 + c] : 0f;
        for (int g = 0; g < cut.Groups; g++)
        {
            long lo = g * cut.GroupRows, hi = Math.Min(cut.RowLimit, lo + cut.GroupRows);
            if (tileMajor != null)
                InterleavePair(tileMajor + ((long)tile * cut.RowLimit * TileWidth), cut.RowLimit, lo, hi, scratch);
            else
                CopyPair((float*)table, h, c0, lo, hi, scratch);
            if (ProbeSkip == 1)
                continue;
            bool last = g == cut.Groups - 1;
            var step = new Pass(scratch - (lo * 2 * TileWidth), (int*)inputs.Rows, (float*)inputs.Weights, (int*)inputs.RowsT, (float*)inputs.WeightsT, cut.K,
                g * cut.GroupChunks, Math.Min(cut.K, (g + 1) * cut.GroupChunks), g == 0 && bias != 0 ? biasPair : null, g == 0 ? null : partial,
                last ? (float*)output + c0 : partial, last ? h : 2 * TileWidth);
            int i = 0;
            for (; i + 8 <= cut.N; i += 8)
                Tokens8Pair(in step, i);
            for (; i < cut.N; i++)
                TokenPair(in step, i);
        }
    }

    /// <summary>Columns [c0, c0 + 32) of rows [lo, hi) into <paramref name="scratch"/> [hi − lo, 32].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CopyPair(float* table, int h, int c0, long lo, long hi, float* scratch)
    {
        float* src = table + (lo * h) + c0;
        for (long i = 0, count = hi - lo; i < count; i++)
        {
            Vector512.Load(src + (i * h)).Store(scratch + (i * 2 * TileWidth));
            Vector512.Load(src + (i * h) + TileWidth).Store(scratch + (i * 2 * TileWidth) + TileWidth);
        }
    }

    /// <summary>Rows [lo, hi) of two adjacent tiles of a tile-major copy (the first at <paramref name="first"/>, the second
    /// <paramref name="rowLimit"/> rows after it) into <paramref name="scratch"/> [hi − lo, 32].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InterleavePair(float* first, long rowLimit, long lo, long hi, float* scratch)
    {
        float* second = first + (rowLimit * TileWidth);
        for (long r = lo; r < hi; r++)
        {
            Vector512.Load(first + (r * TileWidth)).Store(scratch + ((r - lo) * 2 * TileWidth));
            Vector512.Load(second + (r * TileWidth)).Store(scratch + ((r - lo) * 2 * TileWidth) + TileWidth);
        }
    }

    /// <summary>Where a token's two tiles start: partial sums [N][32], the bias pair, or zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> StartPair(in Pass p, int token, int half) =>
        p.Load is not null ? Vector512.Load(p.Load + ((long)token * 2 * TileWidth) + half)
        : p.Bias is null ? Vector512<float>.Zero : Vector512.Load(p.Bias + half);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FinishPair(in Pass p, int token, Vector512<float> a, Vector512<float> b)
    {
        float* d = p.Store + ((long)token * p.StoreStride);
        a.Store(d);
        b.Store(d + TileWidth);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TokenPair(in Pass p, int i)
    {
        Vector512<float> a = StartPair(in p, i, 0), b = StartPair(in p, i, TileWidth);
        float* region = p.Region;
        int* r = p.Rows + ((long)i * p.K);
        float* w = p.Weights + ((long)i * p.K);
        for (int j = p.KBegin; j < p.KEnd; j++)
        {
            float* q = region + ((nint)r[j] * 2 * TileWidth);
            var wj = Vector512.Create(w[j]);
            a = Avx512F.FusedMultiplyAdd(Vector512.Load(q), wj, a);
            b = Avx512F.FusedMultiplyAdd(Vector512.Load(q + TileWidth), wj, b);
        }
        FinishPair(in p, i, a, b);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tokens8Pair(in Pass p, int i)
    {
        Vector512<float> a0 = StartPair(in p, i, 0), a1 = StartPair(in p, i + 1, 0), a2 = StartPair(in p, i + 2, 0), a3 = StartPair(in p, i + 3, 0),
            a4 = StartPair(in p, i + 4, 0), a5 = StartPair(in p, i + 5, 0), a6 = StartPair(in p, i + 6, 0), a7 = StartPair(in p, i + 7, 0);
        Vector512<float> b0 = StartPair(in p, i, TileWidth), b1 = StartPair(in p, i + 1, TileWidth), b2 = StartPair(in p, i + 2, TileWidth),
            b3 = StartPair(in p, i + 3, TileWidth), b4 = StartPair(in p, i + 4, TileWidth), b5 = StartPair(in p, i + 5, TileWidth),
            b6 = StartPair(in p, i + 6, TileWidth), b7 = StartPair(in p, i + 7, TileWidth);
        float* region = p.Region;
        long first = (((long)i * p.K) + (p.KBegin * 8L));                  // i is a multiple of 8: block i/8, chunk KBegin
        int* r = p.RowsT + first;
        float* w = p.WeightsT + first;
        for (int j = p.KBegin; j < p.KEnd; j++, r += 8, w += 8)
        {
            float* q0 = region + ((nint)r[0] * 32), q1 = region + ((nint)r[1] * 32), q2 = region + ((nint)r[2] * 32), q3 = region + ((nint)r[3] * 32);
            var w0 = Vector512.Create(w[0]);
            a0 = Avx512F.FusedMultiplyAdd(Vector512.Load(q0), w0, a0);
            b0 = Avx512F.FusedMultiplyAdd(Vector512.Load(q0 + 16), w0, b0);
            var w1 = Vector512.Create(w[1]);
            a1 = Avx512F.FusedMultiplyAdd(Vector512.Load(q1), w1, a1);
            b1 = Avx512F.FusedMultiplyAdd(Vector512.Load(q1 + 16), w1, b1);
            var w2 = Vector512.Create(w[2]);
            a2 = Avx512F.FusedMultiplyAdd(Vector512.Load(q2), w2, a2);
            b2 = Avx512F.FusedMultiplyAdd(Vector512.Load(q2 + 16), w2, b2);
            var w3 = Vector512.Create(w[3]);
            a3 = Avx512F.FusedMultiplyAdd(Vector512.Load(q3), w3, a3);
            b3 = Avx512F.FusedMultiplyAdd(Vector512.Load(q3 + 16), w3, b3);
            float* q4 = region + ((nint)r[4] * 32), q5 = region + ((nint)r[5] * 32), q6 = region + ((nint)r[6] * 32), q7 = region + ((nint)r[7] * 32);
            var w4 = Vector512.Create(w[4]);
            a4 = Avx512F.FusedMultiplyAdd(Vector512.Load(q4), w4, a4);
            b4 = Avx512F.FusedMultiplyAdd(Vector512.Load(q4 + 16), w4, b4);
            var w5 = Vector512.Create(w[5]);
            a5 = Avx512F.FusedMultiplyAdd(Vector512.Load(q5), w5, a5);
            b5 = Avx512F.FusedMultiplyAdd(Vector512.Load(q5 + 16), w5, b5);
            var w6 = Vector512.Create(w[6]);
            a6 = Avx512F.FusedMultiplyAdd(Vector512.Load(q6), w6, a6);
            b6 = Avx512F.FusedMultiplyAdd(Vector512.Load(q6 + 16), w6, b6);
            var w7 = Vector512.Create(w[7]);
            a7 = Avx512F.FusedMultiplyAdd(Vector512.Load(q7), w7, a7);
            b7 = Avx512F.FusedMultiplyAdd(Vector512.Load(q7 + 16), w7, b7);
        }
        FinishPair(in p, i, a0, b0);
        FinishPair(in p, i + 1, a1, b1);
        FinishPair(in p, i + 2, a2, b2);
        FinishPair(in p, i + 3, a3, b3);
        FinishPair(in p, i + 4, a4, b4);
        FinishPair(in p, i + 5, a5, b5);
        FinishPair(in p, i + 6, a6, b6);
        FinishPair(in p, i + 7, a7, b7);
    }
}
