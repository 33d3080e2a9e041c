using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The tiled forward two tiles at a time (<see cref="TiledGather.Plan.Pairs"/>): a thread stages the chunk group's rows of two
/// adjacent 16-column tiles (A, then B, each [group rows][16]) and walks the tokens 8 at a time, each hit's row index and weight
/// read once for its 32 columns (two fused multiply-adds), 16 accumulators in registers. Per column it is the same chain as
/// <see cref="TiledGather"/>'s single tiles (bias or zero, then the chunks in ascending order, partial sums between groups held
/// exactly in fp32), so the outputs are the same bits. A width's odd last tile, or a partial one, goes through the single-tile path.
/// </summary>
internal static unsafe partial class TiledGather
{
    /// <summary>Every tile of one table: pairs of full tiles, then any tile left over alone; from its tile-major copy, or with
    /// <paramref name="tileMajor"/> 0 straight from the row-major table (each group's 128-byte row slices copied into the scratch).</summary>
    private static void GatherPairs(Inputs inputs, nint table, int h, nint bias, nint output, Cut cut, nint tileMajor)
    {
        int tiles = Tiles(h), pairs = h / (2 * TileWidth);
        KernelParallel.For(tiles - pairs, (long)cut.N * cut.K * TileWidth * 2, (start, end) =>
        {
            for (int item = start; item < end; item++)
            {
                if (item < pairs)
                {
                    float* scratch = ThreadScratch((2L * cut.N * TileWidth) + (2 * cut.GroupRows * TileWidth));
                    GatherPair(inputs, table, h, bias, output, 2 * item, cut, scratch, tileMajor);
                }
                else
                {
                    float* scratch = ThreadScratch(((long)cut.N * TileWidth) + (cut.GroupRows * TileWidth));
                    GatherTile(inputs, table, h, bias, output, item + pairs, cut, scratch, tileMajor, stage: tileMajor != 0, DirectCopyAhead);
                }
            }
        });
    }

    /// <summary>Tiles <paramref name="tile"/> and tile + 1 (both full): per chunk group, both tiles' rows staged in the thread's
    /// scratch [A rows][16] then [B rows][16], every token's 32 columns summed; partial sums [N][32] between the groups.</summary>
    private static void GatherPair(Inputs inputs, nint table, int h, nint bias, nint output, int tile, Cut cut, float* scratch, nint tileMajor)
    {
        int c0 = tile * TileWidth;
        long groupFloats = cut.GroupRows * TileWidth;
        float* partial = scratch + (2 * groupFloats);
        var biasTile = stackalloc float[2 * TileWidth];
        for (int c = 0; c < 2 * TileWidth; c++)
            biasTile[c] = bias != 0 ? ((float*)bias)[c0 + c] : 0f;
        for (int g = 0; g < cut.Groups; g++)
        {
            long lo = g * cut.GroupRows, hi = Math.Min(cut.RowLimit, lo + cut.GroupRows);
            long bytes = (hi - lo) * TileWidth * sizeof(float);
            if (tileMajor == 0)
                CopyPair((float*)table, h, c0, lo, hi, scratch, scratch + groupFloats);
            else
                for (int half = 0; half < 2; half++)
                {
                    float* from = (float*)tileMajor + ((tile + half) * cut.RowLimit * TileWidth) + (lo * TileWidth);
                    Buffer.MemoryCopy(from, scratch + (half * groupFloats), bytes, bytes);
                }
            bool last = g == cut.Groups - 1;
            var step = new PairPass(scratch - (lo * TileWidth), (nint)groupFloats, (int*)inputs.Rows, (float*)inputs.Weights, (int*)inputs.RowsT,
                (float*)inputs.WeightsT, cut.K, g * cut.GroupChunks, Math.Min(cut.K, (g + 1) * cut.GroupChunks),
                g == 0 && bias != 0 ? biasTile : null, g == 0 ? null : partial, last ? (float*)output + c0 : partial, last ? h : 2 * TileWidth);
            int i = 0, n = cut.N, steps = n / 8;
            var next = tileMajor == 0 && cut.PrefetchNext ? NextSlices(cut, h, tile, 2, g, table) : default;
            long perStep = steps == 0 ? 0 : (next.Count + steps - 1) / steps, item = 0;
            for (; i + 8 <= n; i += 8)
            {
                PairTokens8(in step, i);
                long end = Math.Min(next.Count, item + perStep);
                next.Issue(item, end);                                        // the rows staged next, into L2
                item = end;
            }
            for (; i < n; i++)
                PairToken(in step, i);
        }
    }

    /// <summary>Columns [c0, c0 + 32) of rows [lo, hi) of a row-major table into <paramref name="a"/> [hi − lo][16] (the first 16) and
    /// <paramref name="b"/> (the next 16), asking for the slice <see cref="DirectCopyAhead"/> rows ahead.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CopyPair(float* table, int h, int c0, long lo, long hi, float* a, float* b)
    {
        float* src = table + (lo * h) + c0;
        long count = hi - lo, hinted = Math.Max(0, count - DirectCopyAhead);
        long i = 0;
        for (; i < hinted; i++)
        {
            float* ahead = src + ((i + DirectCopyAhead) * h);
            Sse.Prefetch0(ahead);
            Sse.Prefetch0(ahead + TileWidth);
            Vector512.Load(src + (i * h)).Store(a + (i * TileWidth));
            Vector512.Load(src + (i * h) + TileWidth).Store(b + (i * TileWidth));
        }
        for (; i < count; i++)
        {
            Vector512.Load(src + (i * h)).Store(a + (i * TileWidth));
            Vector512.Load(src + (i * h) + TileWidth).Store(b + (i * TileWidth));
        }
    }

    /// <summary>One chunk group's pass over the tokens for a pair of tiles: the staged rows (<c>Region</c>, tile A, indexed by global
    /// row; tile B <c>Offset</c> floats further), where each token's 32 columns start (bias, partial sums [N][32], or zero) and go.</summary>
    private readonly struct PairPass(float* region, nint offset, int* rows, float* weights, int* rowsT, float* weightsT, int k, int kBegin, int kEnd,
        float* bias, float* load, float* store, int storeStride)
    {
        public readonly float* Region = region, Weights = weights, WeightsT = weightsT, Bias = bias, Load = load, Store = store;
        public readonly nint Offset = offset;
        public readonly int* Rows = rows, RowsT = rowsT;
        public readonly int K = k, KBegin = kBegin, KEnd = kEnd, StoreStride = storeStride;
    }

    /// <summary>Half <paramref name="half"/> (0: tile A, 1: tile B) of a token's starting 32 columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Start(in PairPass p, int token, int half) =>
        p.Load is not null ? Vector512.Load(p.Load + ((long)token * 2 * TileWidth) + (half * TileWidth))
        : p.Bias is null ? Vector512<float>.Zero : Vector512.Load(p.Bias + (half * TileWidth));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(in PairPass p, int token, Vector512<float> a, Vector512<float> b)
    {
        float* d = p.Store + ((long)token * p.StoreStride);
        a.Store(d);
        b.Store(d + TileWidth);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PairToken(in PairPass p, int i)
    {
        Vector512<float> a = Start(in p, i, 0), b = Start(in p, i, 1);
        float* region = p.Region;
        nint offset = p.Offset;
        int* r = p.Rows + ((long)i * p.K);
        float* w = p.Weights + ((long)i * p.K);
        for (int j = p.KBegin; j < p.KEnd; j++)
        {
            float* row = region + ((nint)r[j] * TileWidth);
            var wj = Vector512.Create(w[j]);
            a = Avx512F.FusedMultiplyAdd(Vector512.Load(row), wj, a);
            b = Avx512F.FusedMultiplyAdd(Vector512.Load(row + offset), wj, b);
        }
        Finish(in p, i, a, b);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PairTokens8(in PairPass p, int i)
    {
        Vector512<float> a0 = Start(in p, i, 0), a1 = Start(in p, i + 1, 0), a2 = Start(in p, i + 2, 0), a3 = Start(in p, i + 3, 0),
            a4 = Start(in p, i + 4, 0), a5 = Start(in p, i + 5, 0), a6 = Start(in p, i + 6, 0), a7 = Start(in p, i + 7, 0);
        Vector512<float> b0 = Start(in p, i, 1), b1 = Start(in p, i + 1, 1), b2 = Start(in p, i + 2, 1), b3 = Start(in p, i + 3, 1),
            b4 = Start(in p, i + 4, 1), b5 = Start(in p, i + 5, 1), b6 = Start(in p, i + 6, 1), b7 = Start(in p, i + 7, 1);
        float* region = p.Region;
        nint offset = p.Offset;
        long first = ((long)i * p.K) + (p.KBegin * 8L);                    // i is a multiple of 8: block i/8, chunk KBegin
        int* r = p.RowsT + first;
        float* w = p.WeightsT + first;
        for (int j = p.KBegin; j < p.KEnd; j++, r += 8, w += 8)
        {
            float* q0 = region + ((nint)r[0] * TileWidth), q1 = region + ((nint)r[1] * TileWidth);
            float* q2 = region + ((nint)r[2] * TileWidth), q3 = region + ((nint)r[3] * TileWidth);
            var w0 = Vector512.Create(w[0]);
            a0 = Avx512F.FusedMultiplyAdd(Vector512.Load(q0), w0, a0);
            b0 = Avx512F.FusedMultiplyAdd(Vector512.Load(q0 + offset), w0, b0);
            var w1 = Vector512.Create(w[1]);
            a1 = Avx512F.FusedMultiplyAdd(Vector512.Load(q1), w1, a1);
            b1 = Avx512F.FusedMultiplyAdd(Vector512.Load(q1 + offset), w1, b1);
            var w2 = Vector512.Create(w[2]);
            a2 = Avx512F.FusedMultiplyAdd(Vector512.Load(q2), w2, a2);
            b2 = Avx512F.FusedMultiplyAdd(Vector512.Load(q2 + offset), w2, b2);
            var w3 = Vector512.Create(w[3]);
            a3 = Avx512F.FusedMultiplyAdd(Vector512.Load(q3), w3, a3);
            b3 = Avx512F.FusedMultiplyAdd(Vector512.Load(q3 + offset), w3, b3);
            float* q4 = region + ((nint)r[4] * TileWidth), q5 = region + ((nint)r[5] * TileWidth);
            float* q6 = region + ((nint)r[6] * TileWidth), q7 = region + ((nint)r[7] * TileWidth);
            var w4 = Vector512.Create(w[4]);
            a4 = Avx512F.FusedMultiplyAdd(Vector512.Load(q4), w4, a4);
            b4 = Avx512F.FusedMultiplyAdd(Vector512.Load(q4 + offset), w4, b4);
            var w5 = Vector512.Create(w[5]);
            a5 = Avx512F.FusedMultiplyAdd(Vector512.Load(q5), w5, a5);
            b5 = Avx512F.FusedMultiplyAdd(Vector512.Load(q5 + offset), w5, b5);
            var w6 = Vector512.Create(w[6]);
            a6 = Avx512F.FusedMultiplyAdd(Vector512.Load(q6), w6, a6);
            b6 = Avx512F.FusedMultiplyAdd(Vector512.Load(q6 + offset), w6, b6);
            var w7 = Vector512.Create(w[7]);
            a7 = Avx512F.FusedMultiplyAdd(Vector512.Load(q7), w7, a7);
            b7 = Avx512F.FusedMultiplyAdd(Vector512.Load(q7 + offset), w7, b7);
        }
        Finish(in p, i, a0, b0);
        Finish(in p, i + 1, a1, b1);
        Finish(in p, i + 2, a2, b2);
        Finish(in p, i + 3, a3, b3);
        Finish(in p, i + 4, a4, b4);
        Finish(in p, i + 5, a5, b5);
        Finish(in p, i + 6, a6, b6);
        Finish(in p, i + 7, a7, b7);
    }
}
