using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The gather's forward <c>y[n] = b + Σ_k w[n, k] · T[row[n, k]]</c> one 16-column tile at a time, with the tile's
/// table rows first copied into a small contiguous scratch that stays in L2 while every token is served from it
/// (issue 16, "Forward gather, third round" in docs/benchmarks.md).
/// </summary>
/// <remarks>
/// <para>Today's token-major kernel (<see cref="RowKernels.WeightedBagSum"/>) reads N·K whole rows: at d = 512, N = 4096
/// that is 512 MB streamed from DRAM for a 33.5 MB table, each row read N/256 times. With the default <see cref="Plan"/>
/// the table is first copied into a pooled tile-major buffer [h/16][R][16] (rows read in order, 64-byte streaming
/// stores); each thread then owns whole output tiles (columns [16·t, 16·t + 16) of one table): per group of
/// <see cref="Plan.GroupChunks"/> chunks (512 KB of tile at 2^τ = 256) it copies the group's contiguous tile into its
/// scratch, which stays in L2, and walks all tokens, <see cref="Plan.Tokens"/> at a time, each token's tile accumulated
/// in one AVX-512 register over its hits in those chunks. With more than one chunk group a token's partial tile waits in
/// a contiguous [N, 16] scratch between groups. The stored table keeps its row-major layout and the copy is rebuilt on
/// every call unless the pooled buffer still holds the table's current values (<see cref="TileMajorBuffer"/>, which checks that a
/// table has not changed since); a training forward may instead pass the layer's kept copy (<see cref="TileMajorTableCopy"/>,
/// <c>KernelSettings.TileMajorCopyFromUpdate</c>), which is current by its own check.</para>
/// <para>Every output value is the same chain of fused multiply-adds as in today's kernel (bias or zero, then the
/// chunks in ascending order), so results are bit-identical to it except in the last 1–7 columns of a width that is
/// not a multiple of 8, where today's kernel adds without fusing. No atomics; nothing depends on the thread count.</para>
/// </remarks>
internal static unsafe partial class TiledGather
{
    /// <summary>Columns per tile: one AVX-512 register of fp32.</summary>
    public const int TileWidth = 16;

    /// <summary>True when this machine runs the kernel (AVX-512 with FMA); otherwise callers keep the token-major kernel.</summary>
    public static bool IsAccelerated => Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    /// <summary>How the work is cut.</summary>
    /// <param name="GroupChunks">Chunks whose rows are served together (0: as many as fit <see cref="ScratchBytes"/>).</param>
    /// <param name="Tokens">Tokens interleaved per step (1, 4 or 8): independent chains hide the FMA latency.</param>
    /// <param name="TileMajor">True: the table is first copied whole into a tile-major buffer [h/16][R][16] (rows read
    /// in order), and each group's tile is read from there; false: each thread copies its tile's strided column slice
    /// into its own scratch per group.</param>
    /// <param name="StageGroup">With <paramref name="TileMajor"/>: each group's contiguous tile is first copied into the thread's
    /// scratch (sequential reads) instead of read in place.</param>
    /// <param name="StreamingCopy">With <paramref name="TileMajor"/>: the tile-major copy is written with non-temporal stores
    /// (no read for ownership of lines that are overwritten whole).</param>
    /// <param name="PairTiles">Two adjacent 16-column tiles served in one walk from a 32-column scratch (each hit's row index and weight
    /// read once for both; <see cref="GatherTilePair"/>), chunk groups sized for the pair: copied from the row-major table without
    /// <paramref name="TileMajor"/>, staged from the tile-major copy with it and <paramref name="StageGroup"/>.</param>
    public readonly record struct Plan(int GroupChunks, int Tokens, bool TileMajor, bool StageGroup = false, bool StreamingCopy = false, bool PairTiles = false)
    {
        /// <summary>The default, from <c>perf probe-forward</c> at d = 512, τ = 8 (docs/benchmarks.md).</summary>
        public static Plan Default { get; } = new(0, 8, TileMajor: true, StageGroup: true, StreamingCopy: true);

        /// <summary>Each thread copies its tile's rows straight from the row-major table into its L2 scratch, no tile-major copy: the
        /// training forward's plan on Intel (<see cref="KernelSettings.TiledStridedCopy"/>).</summary>
        public static Plan Strided { get; } = new(0, 8, TileMajor: false);
    }

    /// <summary>A probe knob (<c>perf probe-tiled</c>), 0 outside probes: 1 skips the token walks (the copies alone), 2 skips the staging
    /// copies (the walks read whatever the scratch holds: timing only, wrong outputs).</summary>
    internal static int ProbeSkip { get; set; }

    /// <summary>The bytes one chunk group's tile may take when <see cref="Plan.GroupChunks"/> is 0: <see cref="KernelSettings.TiledGroupBytes"/>,
    /// half of a core's L2 (512 KB on Zen 4's 1 MB, where the plan was tuned; 1 MB on Emerald Rapids' 2 MB).</summary>
    public static int ScratchBytes => KernelSettings.Current.TiledGroupBytes;

    /// <summary>
    /// Whether the tiled kernel is expected to beat the token-major one: accelerated, at least one full tile, and enough
    /// hits per table row (each row hit about <see cref="MinHitsPerRow"/> times or more) that copying the table pays
    /// (<c>perf probe-forward</c>, loaded: no gain at 2 hits per row, N = 512 at d = 512; 1.2–1.7× at 4–8).
    /// </summary>
    public static bool Pays(int n, int k, long rowLimit, int h) =>
        IsAccelerated && h >= TileWidth && rowLimit > 0 && (long)n * k >= MinHitsPerRow * rowLimit;

    /// <summary>The hits per table row from which the tiled kernel runs (<see cref="Pays"/>).</summary>
    public const int MinHitsPerRow = 4;

    /// <summary>
    /// Writes <paramref name="outputs"/>[t] [N, h_t] = bias_t + Σ_k weights[n, k] · tables[t][rows[n, k]] for every table.
    /// </summary>
    /// <param name="rows">Global rows int32 [N, K] (flat), each below <paramref name="rowLimit"/>.</param>
    /// <param name="chunked">Whether chunk k reads only rows [k·B, (k+1)·B) with B = rowLimit / K (<see cref="PooledRows.Chunked"/>);
    /// otherwise one group spans every row.</param>
    /// <param name="n">Tokens N.</param>
    /// <param name="k">Chunks K.</param>
    /// <param name="rowLimit">Rows every index stays below (the smallest table's row count).</param>
    /// <param name="weights">[N, K].</param>
    /// <param name="tables">Row-major tables [R_t, h_t].</param>
    /// <param name="widths">h_t.</param>
    /// <param name="biases">[h_t] per table, or 0 for none.</param>
    /// <param name="outputs">[N, h_t] per table.</param>
    /// <param name="plan">How the work is cut.</param>
    /// <param name="tables16">Optional, per table: a bf16 copy [R_t, h_t] (<see cref="Bf16TableCopy"/>) to read instead of the table
    /// (0: the fp32 table); the tile-major buffer then holds its widened values (exact), so the sums are those of the bf16 table.</param>
    /// <param name="tileMajor">Optional, per table: a current tile-major copy [h_t/16][rowLimit][16] of the table (<see cref="TileMajorTableCopy"/>,
    /// 64-byte aligned) read in place of copying the table (0: copy it into the pooled buffer); with <see cref="Plan.TileMajor"/> only.</param>
    /// <param name="keys">Optional, per table: which values of it a copy holds (<see cref="TileMajorBuffer.Key"/>; null: unknown). A table
    /// whose key the pooled buffer already holds is read from it without copying; with <see cref="Plan.TileMajor"/> only.</param>
    public static void Forward(int[] rows, bool chunked, int n, int k, long rowLimit, nint weights, nint[] tables, int[] widths,
        nint[] biases, nint[] outputs, Plan plan, nint[]? tables16 = null, nint[]? tileMajor = null, TileMajorBuffer.Key?[]? keys = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (n == 0 || k == 0)
            return;
        int blockRows = chunked ? (int)(rowLimit / k) : 0;
        int groupChunks = !chunked ? k
            : plan.GroupChunks > 0 ? Math.Min(k, plan.GroupChunks)
            : Math.Clamp(ScratchBytes / (blockRows * TileWidth * sizeof(float)), 1, k);
        // For the 8-token steps, each block of 8 tokens' rows and weights interleaved [N/8][K][8]: one pointer each walks
        // all eight, so the loop keeps every address in a register (eight separate pointers each did not fit).
        int blocks = plan.Tokens >= 8 ? n / 8 : 0;
        var cut = new Cut(n, k, rowLimit, chunked ? (long)groupChunks * blockRows : rowLimit, groupChunks, (k + groupChunks - 1) / groupChunks, plan.Tokens);
        int pairChunks = !chunked ? k
            : plan.GroupChunks > 0 ? Math.Min(k, plan.GroupChunks)
            : Math.Clamp(ScratchBytes / (blockRows * 2 * TileWidth * sizeof(float)), 1, k);
        var pairCut = cut with { GroupRows = chunked ? (long)pairChunks * blockRows : rowLimit, GroupChunks = pairChunks, Groups = (k + pairChunks - 1) / pairChunks };
        var rowsT = ArrayPool<int>.Shared.Rent(Math.Max(1, blocks * k * 8));
        var weightsT = ArrayPool<float>.Shared.Rent(Math.Max(1, blocks * k * 8));
        try
        {
            fixed (int* r = rows, rt = rowsT)
            fixed (float* wt = weightsT)
            {
                Interleave(r, (float*)weights, blocks, k, rt, wt);
                Run(new Inputs((nint)r, weights, (nint)rt, (nint)wt), tables, widths, biases, outputs, plan, cut, tables16, tileMajor, keys, pairCut);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(rowsT);
            ArrayPool<float>.Shared.Return(weightsT);
        }
    }

    /// <summary>The rows and weights [N, K] and their 8-token interleaved copies [N/8][K][8].</summary>
    private readonly record struct Inputs(nint Rows, nint Weights, nint RowsT, nint WeightsT);

    /// <summary>rows/weights [N, K] → [blocks][K][8] for the first 8·<paramref name="blocks"/> tokens.</summary>
    internal static void Interleave(int* rows, float* weights, int blocks, int k, int* rowsT, float* weightsT)
    {
        for (long b = 0; b < blocks; b++)
            for (int m = 0; m < 8; m++)
            {
                int* r = rows + (((b * 8) + m) * k);
                float* w = weights + (((b * 8) + m) * k);
                long o = (b * k * 8) + m;
                for (int j = 0; j < k; j++)
                {
                    rowsT[o + (j * 8)] = r[j];
                    weightsT[o + (j * 8)] = w[j];
                }
            }
    }

    /// <summary>Every table's tiles, split between threads: strided per-thread copies, or through the tile-major buffer.</summary>
    private static void Run(Inputs inputs, nint[] tables, int[] widths, nint[] biases, nint[] outputs, Plan plan, Cut cut, nint[]? tables16, nint[]? tileMajor,
        TileMajorBuffer.Key?[]? keys, Cut pairCut)
    {
        int n = cut.N, k = cut.K;
        long rowLimit = cut.RowLimit;
        bool bf16 = tables16 is not null && tables16.Any(t => t != 0);
        bool strided = !plan.TileMajor && !bf16 && (tileMajor is null || tileMajor.All(t => t == 0));
        if (strided && plan.PairTiles && plan.Tokens >= 8)
        {
            RunPairs(inputs, tables, widths, biases, outputs, cut, pairCut);
            return;
        }
        if (strided)
        {
            var firstTile = new int[tables.Length + 1];
            for (int t = 0; t < tables.Length; t++)
                firstTile[t + 1] = firstTile[t] + Tiles(widths[t]);
            KernelParallel.For(firstTile[^1], (long)n * k * TileWidth, (start, end) =>
            {
                float* scratch = ThreadScratch((cut.GroupRows * TileWidth) + ((long)n * TileWidth));
                for (int item = start; item < end; item++)
                {
                    int t = Array.FindLastIndex(firstTile, f => f <= item);
                    GatherTile(inputs, tables[t], widths[t], biases[t], outputs[t], item - firstTile[t], cut, scratch, 0, false);
                }
            });
            return;
        }
        // Tile-major: one table at a time through one pooled buffer [h/16][rowLimit][16], or through the table's own kept copy.
        bool[] kept = Enumerable.Range(0, tables.Length).Select(t => tileMajor is not null && tileMajor[t] != 0).ToArray();
        int maxTiles = Enumerable.Range(0, tables.Length).Where(t => !kept[t]).Select(t => Tiles(widths[t])).DefaultIfEmpty(0).Max();
        long bufferFloats = 0;
        TileMajorBuffer.Key? held = null;                                   // what the pooled buffer holds
        nint pooled = maxTiles == 0 ? 0 : TileMajorBuffer.Rent((long)maxTiles * rowLimit * TileWidth, out bufferFloats, out held, keys);
        try
        {
            for (int t = 0; t < tables.Length; t++)
            {
                int h = widths[t];
                nint table = tables[t], bias = biases[t], output = outputs[t];
                nint buffer = pooled;
                var key = keys?[t];
                if (kept[t])
                    buffer = tileMajor![t];                                     // already current: nothing to copy
                else if (key is not null && held == key && KernelSettings.Current.ReuseTileMajorBuffer)
                    TileMajorBuffer.NoteReuse();                                // holds this table's current values: nothing to copy
                else
                {
                    held = null;
                    if (tables16 is not null && tables16[t] != 0)
                        ToTileMajor((ushort*)tables16[t], h, rowLimit, (float*)buffer);
                    else
                        ToTileMajor((float*)table, h, rowLimit, (float*)buffer, plan.StreamingCopy);
                    held = tables16 is not null && tables16[t] != 0 ? null : key;
                }
                if (plan.PairTiles && plan.StageGroup && plan.Tokens >= 8)
                {
                    RunPairs(inputs, [table], [h], [bias], [output], cut, pairCut, buffer);
                    continue;
                }
                KernelParallel.For(Tiles(h), (long)n * k * TileWidth, (start, end) =>
                {
                    float* scratch = ThreadScratch((long)n * TileWidth + (plan.StageGroup ? cut.GroupRows * TileWidth : 0));
                    for (int tile = start; tile < end; tile++)
                        GatherTile(inputs, table, h, bias, output, tile, cut, scratch, buffer, plan.StageGroup);
                });
            }
        }
        finally
        {
            if (pooled != 0)
                TileMajorBuffer.Return(pooled, bufferFloats, held);
        }
    }

    private static int Tiles(int h) => (h + TileWidth - 1) / TileWidth;

    /// <summary>The shape of one call: tokens, chunks, rows, and how chunks are grouped.</summary>
    private readonly record struct Cut(int N, int K, long RowLimit, long GroupRows, int GroupChunks, int Groups, int Tokens);

    /// <summary>One output tile of one table: every chunk group's pass over all tokens. With <c>tileMajor</c> 0 (strided mode)
    /// <c>scratch</c> is the thread's group tile followed by the partial sums; otherwise it is the partial sums and the
    /// tile is read from the table's tile-major copy.</summary>
    private static void GatherTile(Inputs inputs, nint table, int h, nint bias, nint output, int tile, Cut cut,
        float* scratch, nint tileMajor, bool stage)
    {
        int c0 = tile * TileWidth, cols = Math.Min(TileWidth, h - c0);
        float* partial = tileMajor == 0 || stage ? scratch + (cut.GroupRows * TileWidth) : scratch;
        var biasTile = stackalloc float[TileWidth];
        for (int c = 0; c < TileWidth; c++)
            biasTile[c] = bias != 0 && c < cols ? ((float*)bias)[c0 + c] : 0f;
        bool direct = cols == TileWidth;                                  // a partial last tile goes through the partial sums
        {
            for (int g = 0; g < cut.Groups; g++)
            {
                long lo = g * cut.GroupRows, hi = Math.Min(cut.RowLimit, lo + cut.GroupRows);
                float* region;
                if (tileMajor == 0)
                {
                    CopyTile((float*)table, h, c0, cols, lo, hi, scratch);
                    region = scratch - (lo * TileWidth);
                }
                else
                {
                    region = (float*)tileMajor + ((long)tile * cut.RowLimit * TileWidth);
                    if (stage)
                    {
                        long bytes = (hi - lo) * TileWidth * sizeof(float);
                        if (ProbeSkip != 2)
                            Buffer.MemoryCopy(region + (lo * TileWidth), scratch, bytes, bytes);
                        region = scratch - (lo * TileWidth);
                    }
                }
                if (ProbeSkip == 1)
                    continue;
                bool last = g == cut.Groups - 1;
                var step = new Pass(region, (int*)inputs.Rows, (float*)inputs.Weights, (int*)inputs.RowsT, (float*)inputs.WeightsT, cut.K, g * cut.GroupChunks, Math.Min(cut.K, (g + 1) * cut.GroupChunks),
                    g == 0 && bias != 0 ? biasTile : null, g == 0 ? null : partial,
                    last && direct ? (float*)output + c0 : partial, last && direct ? h : TileWidth);
                int i = 0, n = cut.N;
                if (cut.Tokens >= 8)
                    for (; i + 8 <= n; i += 8)
                        Tokens8(in step, i);
                if (cut.Tokens >= 4)
                    for (; i + 4 <= n; i += 4)
                        Tokens4(in step, i);
                for (; i < n; i++)
                    Token(in step, i);
            }
        }
        if (!direct)
            for (long i = 0; i < cut.N; i++)
                for (int c = 0; c < cols; c++)
                    ((float*)output)[(i * h) + c0 + c] = partial[(i * TileWidth) + c];
    }

    /// <summary>One chunk group's pass over the tokens for one tile: where rows are read (<c>Region</c>, indexed by global
    /// row), where each token's sum starts (bias tile, partial sums, or zero) and where it goes (output or partial sums).
    /// The hot loops call nothing: a vector local live across a call is kept on the stack by the JIT, which made every
    /// fused multiply-add wait for a store and a reload.</summary>
    private readonly struct Pass(float* region, int* rows, float* weights, int* rowsT, float* weightsT, int k, int kBegin, int kEnd,
        float* bias, float* load, float* store, int storeStride)
    {
        public readonly float* Region = region, Weights = weights, WeightsT = weightsT, Bias = bias, Load = load, Store = store;
        public readonly int* Rows = rows, RowsT = rowsT;
        public readonly int K = k, KBegin = kBegin, KEnd = kEnd, StoreStride = storeStride;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Start(in Pass p, int token) =>
        p.Load is not null ? Vector512.Load(p.Load + ((long)token * TileWidth))
        : p.Bias is null ? Vector512<float>.Zero : Vector512.Load(p.Bias);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(in Pass p, int token, Vector512<float> acc) => acc.Store(p.Store + ((long)token * p.StoreStride));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Token(in Pass p, int i)
    {
        var a = Start(in p, i);
        float* region = p.Region;
        int* r = p.Rows + ((long)i * p.K);
        float* w = p.Weights + ((long)i * p.K);
        for (int j = p.KBegin; j < p.KEnd; j++)
            a = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r[j] * TileWidth)), Vector512.Create(w[j]), a);
        Finish(in p, i, a);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tokens4(in Pass p, int i)
    {
        Vector512<float> a0 = Start(in p, i), a1 = Start(in p, i + 1), a2 = Start(in p, i + 2), a3 = Start(in p, i + 3);
        float* region = p.Region;
        int k = p.K;
        int* r0 = p.Rows + ((long)i * k), r1 = r0 + k, r2 = r1 + k, r3 = r2 + k;
        float* w0 = p.Weights + ((long)i * k), w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
        for (int j = p.KBegin; j < p.KEnd; j++)
        {
            a0 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r0[j] * TileWidth)), Vector512.Create(w0[j]), a0);
            a1 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r1[j] * TileWidth)), Vector512.Create(w1[j]), a1);
            a2 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r2[j] * TileWidth)), Vector512.Create(w2[j]), a2);
            a3 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r3[j] * TileWidth)), Vector512.Create(w3[j]), a3);
        }
        Finish(in p, i, a0);
        Finish(in p, i + 1, a1);
        Finish(in p, i + 2, a2);
        Finish(in p, i + 3, a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tokens8(in Pass p, int i)
    {
        Vector512<float> a0 = Start(in p, i), a1 = Start(in p, i + 1), a2 = Start(in p, i + 2), a3 = Start(in p, i + 3),
            a4 = Start(in p, i + 4), a5 = Start(in p, i + 5), a6 = Start(in p, i + 6), a7 = Start(in p, i + 7);
        float* region = p.Region;
        long first = (((long)i * p.K) + (p.KBegin * 8L));                  // i is a multiple of 8: block i/8, chunk KBegin
        int* r = p.RowsT + first;
        float* w = p.WeightsT + first;
        for (int j = p.KBegin; j < p.KEnd; j++, r += 8, w += 8)
        {
            a0 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r[0] * TileWidth)), Vector512.Create(w[0]), a0);
            a1 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r[1] * TileWidth)), Vector512.Create(w[1]), a1);
            a2 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r[2] * TileWidth)), Vector512.Create(w[2]), a2);
            a3 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r[3] * TileWidth)), Vector512.Create(w[3]), a3);
            a4 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r[4] * TileWidth)), Vector512.Create(w[4]), a4);
            a5 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r[5] * TileWidth)), Vector512.Create(w[5]), a5);
            a6 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r[6] * TileWidth)), Vector512.Create(w[6]), a6);
            a7 = Avx512F.FusedMultiplyAdd(Vector512.Load(region + ((nint)r[7] * TileWidth)), Vector512.Create(w[7]), a7);
        }
        Finish(in p, i, a0);
        Finish(in p, i + 1, a1);
        Finish(in p, i + 2, a2);
        Finish(in p, i + 3, a3);
        Finish(in p, i + 4, a4);
        Finish(in p, i + 5, a5);
        Finish(in p, i + 6, a6);
        Finish(in p, i + 7, a7);
    }

    [ThreadStatic]
    private static nint threadScratch;

    [ThreadStatic]
    private static long threadScratchFloats;

    /// <summary>This thread's scratch of at least <paramref name="floats"/> floats, 64-byte aligned, kept for the thread's
    /// life (fresh pages every call would cost page faults and kernel zeroing each forward).</summary>
    internal static float* ThreadScratch(long floats)
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
}
