using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// <see cref="TiledGather"/> over a table's bf16 copy (<see cref="Bf16TableCopy"/>, <c>KernelSettings.Bf16ForwardTables</c>): the
/// same plan (the table copied tile-major, each chunk group's tile staged in an L2 scratch, threads owning output tiles, 8 tokens
/// in registers), with 32-column tiles of bf16, so one 64-byte load serves 32 columns: half the tile-major bytes, half the L2 loads
/// and half the passes over the tokens' rows and weights of the fp32 kernel's 16-column tiles.
/// </summary>
/// <remarks>
/// The tile-major buffer is [h/32][R] 64-byte rows, each in the "paired" layout of <see cref="Bf16GradientRows"/> (lane i: column i
/// in its low half, column 16 + i in its high half), so a load widens to columns 0–15 with a shift and 16–31 with a mask, exactly.
/// Every output value is the fp32 kernel's chain of fused multiply-adds (bias or zero, then the chunks in ascending order) on the
/// widened values: the fp32 tiled kernel's bits on the rounded table. Needs every width a multiple of 32 (<see cref="Supports"/>).
/// </remarks>
internal static unsafe class Bf16TiledGather
{
    /// <summary>Columns per tile: one 64-byte line of bf16.</summary>
    public const int TileWidth = 32;

    /// <summary>The bytes of one chunk group's staged tile (a probe knob; 0, the default, takes <see cref="TiledGather.ScratchBytes"/>).</summary>
    internal static int GroupBytes { get; set; }

    /// <summary>Whether the kernel takes tables of these widths on this machine (AVX-512, each width a multiple of 32).</summary>
    public static bool Supports(int[] widths) => TiledGather.IsAccelerated && widths.All(h => h > 0 && h % TileWidth == 0);

    /// <summary>outputs[t] [N, h_t] = bias_t + Σ_k weights[n, k] · bf16 table_t[rows[n, k]]; arguments as <see cref="TiledGather.Forward"/>;
    /// with <c>strided</c> each thread pairs its tile's 32 columns of every row straight from the row-major bf16 table into its scratch
    /// (<c>KernelSettings.TiledStridedCopy</c>) instead of reading them from the table's paired tile-major copy: the same values.</summary>
    public static void Forward(int[] rows, bool chunked, int n, int k, long rowLimit, nint weights, nint[] tables16, int[] widths,
        nint[] biases, nint[] outputs, bool strided = false)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (n == 0 || k == 0)
            return;
        int blockRows = chunked ? (int)(rowLimit / k) : 0;
        int groupChunks = !chunked ? k : Math.Clamp((GroupBytes > 0 ? GroupBytes : TiledGather.ScratchBytes) / (blockRows * 64), 1, k);
        var cut = new Cut(n, k, rowLimit, chunked ? (long)groupChunks * blockRows : rowLimit, groupChunks, (k + groupChunks - 1) / groupChunks);
        int blocks = n / 8;
        var rowsT = ArrayPool<int>.Shared.Rent(Math.Max(1, blocks * k * 8));
        var weightsT = ArrayPool<float>.Shared.Rent(Math.Max(1, blocks * k * 8));
        long bufferFloats = 0;
        nint buffer = strided ? 0 : TileMajorBuffer.Rent(widths.Max() / 2 * rowLimit, out bufferFloats, out _);
        try
        {
            fixed (int* r = rows, rt = rowsT)
            fixed (float* wt = weightsT)
            {
                TiledGather.Interleave(r, (float*)weights, blocks, k, rt, wt);
                var inputs = new Inputs((nint)r, weights, (nint)rt, (nint)wt);
                for (int t = 0; t < tables16.Length; t++)
                {
                    int h = widths[t];
                    nint bias = biases[t], output = outputs[t];
                    ushort* table = (ushort*)tables16[t];
                    if (!strided)
                        ToPairedTiles(table, h, rowLimit, (uint*)buffer);
                    KernelParallel.For(h / TileWidth, (long)n * k * TileWidth, (start, end) =>
                    {
                        float* scratch = TiledGather.ThreadScratch(((long)n * TileWidth) + (cut.GroupRows * 16));
                        for (int tile = start; tile < end; tile++)
                            GatherTile(inputs, strided ? null : (uint*)buffer + ((long)tile * rowLimit * 16), h, bias, output, tile, cut, scratch,
                                strided ? table : null);
                    });
                }
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(rowsT);
            ArrayPool<float>.Shared.Return(weightsT);
            if (buffer != 0)
                TileMajorBuffer.Return(buffer, bufferFloats);               // holds bf16 pairs: no table's fp32 copy
        }
    }

    /// <summary>The rows and weights [N, K] and their 8-token interleaved copies [N/8][K][8].</summary>
    private readonly record struct Inputs(nint Rows, nint Weights, nint RowsT, nint WeightsT);

    /// <summary>The shape of one call: tokens, chunks, rows, and how chunks are grouped.</summary>
    private readonly record struct Cut(int N, int K, long RowLimit, long GroupRows, int GroupChunks, int Groups);

    /// <summary>Row-major bf16 [R, h] → [h/32][R][16 paired lanes], rows in parallel, non-temporal stores (the buffer is 64-byte aligned).</summary>
    internal static void ToPairedTiles(ushort* table, int h, long rowLimit, uint* buffer)
    {
        nint src = (nint)table, dst = (nint)buffer;
        KernelParallel.For((int)rowLimit, h, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                ushort* s = (ushort*)src + (r * h);
                for (int tile = 0; tile < h / TileWidth; tile++)
                {
                    var low = Avx512F.ConvertToVector512UInt32(Vector256.Load(s + (tile * TileWidth)));
                    var high = Avx512F.ConvertToVector512UInt32(Vector256.Load(s + (tile * TileWidth) + 16));
                    Avx512F.StoreAlignedNonTemporal((uint*)dst + ((((tile * rowLimit) + r)) * 16), low | (high << 16));
                }
            }
            Sse.StoreFence();
        });
    }

    /// <summary>One 32-column output tile of one table: each chunk group's tile staged in the thread's scratch (from the paired tile-major
    /// copy <paramref name="tiles"/>, or paired here from the row-major <paramref name="table"/>), then every token.</summary>
    private static void GatherTile(Inputs inputs, uint* tiles, int h, nint bias, nint output, int tile, Cut cut, float* scratch, ushort* table)
    {
        int c0 = tile * TileWidth;
        float* partial = scratch;
        uint* staged = (uint*)(scratch + ((long)cut.N * TileWidth));
        for (int g = 0; g < cut.Groups; g++)
        {
            long lo = g * cut.GroupRows, hi = Math.Min(cut.RowLimit, lo + cut.GroupRows);
            long bytes = (hi - lo) * 64;
            if (table != null)
                PairRows(table, h, c0, lo, hi, staged);
            else
                Buffer.MemoryCopy(tiles + (lo * 16), staged, bytes, bytes);
            bool last = g == cut.Groups - 1;
            var p = new Pass(staged - (lo * 16), (int*)inputs.Rows, (float*)inputs.Weights, (int*)inputs.RowsT, (float*)inputs.WeightsT, cut.K,
                g * cut.GroupChunks, Math.Min(cut.K, (g + 1) * cut.GroupChunks), g == 0 && bias != 0 ? (float*)bias + c0 : null,
                g == 0 ? null : partial, last ? (float*)output + c0 : partial, last ? h : TileWidth);
            int i = 0;
            for (; i + 8 <= cut.N; i += 8)
                Tokens8(in p, i);
            for (; i < cut.N; i++)
                Token(in p, i);
        }
    }

    /// <summary>Columns [c0, c0 + 32) of rows [lo, hi) of a row-major bf16 table into <paramref name="staged"/> [hi − lo][16 paired lanes],
    /// as <see cref="ToPairedTiles"/> lays them out.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PairRows(ushort* table, int h, int c0, long lo, long hi, uint* staged)
    {
        for (long r = lo; r < hi; r++)
        {
            ushort* s = table + (r * h) + c0;
            var low = Avx512F.ConvertToVector512UInt32(Vector256.Load(s));
            var high = Avx512F.ConvertToVector512UInt32(Vector256.Load(s + 16));
            (low | (high << 16)).Store(staged + ((r - lo) * 16));
        }
    }

    /// <summary>One group's pass for one tile: where rows are read (indexed by global row), where sums start and where they go.</summary>
    private readonly struct Pass(uint* region, int* rows, float* weights, int* rowsT, float* weightsT, int k, int kBegin, int kEnd,
        float* bias, float* load, float* store, int storeStride)
    {
        public readonly uint* Region = region;
        public readonly float* Weights = weights, WeightsT = weightsT, Bias = bias, Load = load, Store = store;
        public readonly int* Rows = rows, RowsT = rowsT;
        public readonly int K = k, KBegin = kBegin, KEnd = kEnd, StoreStride = storeStride;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Start(in Pass p, int token, int half) =>
        p.Load is not null ? Vector512.Load(p.Load + ((long)token * TileWidth) + half)
        : p.Bias is null ? Vector512<float>.Zero : Vector512.Load(p.Bias + half);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(in Pass p, int token, Vector512<float> low, Vector512<float> high)
    {
        float* d = p.Store + ((long)token * p.StoreStride);
        low.Store(d);
        high.Store(d + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Token(in Pass p, int i)
    {
        Vector512<float> a = Start(in p, i, 0), b = Start(in p, i, 16);
        var mask = Vector512.Create(0xFFFF0000u);
        int* r = p.Rows + ((long)i * p.K);
        float* w = p.Weights + ((long)i * p.K);
        for (int j = p.KBegin; j < p.KEnd; j++)
        {
            var u = Vector512.Load(p.Region + ((nint)r[j] * 16));
            var wj = Vector512.Create(w[j]);
            a = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(u, 16).AsSingle(), wj, a);
            b = Avx512F.FusedMultiplyAdd((u & mask).AsSingle(), wj, b);
        }
        Finish(in p, i, a, b);
    }

    /// <summary>Eight tokens (i a multiple of 8): sixteen accumulators, one load and one broadcast per token and chunk.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tokens8(in Pass p, int i)
    {
        Vector512<float> a0 = Start(in p, i, 0), b0 = Start(in p, i, 16), a1 = Start(in p, i + 1, 0), b1 = Start(in p, i + 1, 16),
            a2 = Start(in p, i + 2, 0), b2 = Start(in p, i + 2, 16), a3 = Start(in p, i + 3, 0), b3 = Start(in p, i + 3, 16),
            a4 = Start(in p, i + 4, 0), b4 = Start(in p, i + 4, 16), a5 = Start(in p, i + 5, 0), b5 = Start(in p, i + 5, 16),
            a6 = Start(in p, i + 6, 0), b6 = Start(in p, i + 6, 16), a7 = Start(in p, i + 7, 0), b7 = Start(in p, i + 7, 16);
        var mask = Vector512.Create(0xFFFF0000u);
        uint* region = p.Region;
        long first = ((long)i * p.K) + (p.KBegin * 8L);
        int* r = p.RowsT + first;
        float* w = p.WeightsT + first;
        for (int j = p.KBegin; j < p.KEnd; j++, r += 8, w += 8)
        {
            var u = Vector512.Load(region + ((nint)r[0] * 16));
            var wj = Vector512.Create(w[0]);
            a0 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(u, 16).AsSingle(), wj, a0);
            b0 = Avx512F.FusedMultiplyAdd((u & mask).AsSingle(), wj, b0);
            u = Vector512.Load(region + ((nint)r[1] * 16));
            wj = Vector512.Create(w[1]);
            a1 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(u, 16).AsSingle(), wj, a1);
            b1 = Avx512F.FusedMultiplyAdd((u & mask).AsSingle(), wj, b1);
            u = Vector512.Load(region + ((nint)r[2] * 16));
            wj = Vector512.Create(w[2]);
            a2 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(u, 16).AsSingle(), wj, a2);
            b2 = Avx512F.FusedMultiplyAdd((u & mask).AsSingle(), wj, b2);
            u = Vector512.Load(region + ((nint)r[3] * 16));
            wj = Vector512.Create(w[3]);
            a3 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(u, 16).AsSingle(), wj, a3);
            b3 = Avx512F.FusedMultiplyAdd((u & mask).AsSingle(), wj, b3);
            u = Vector512.Load(region + ((nint)r[4] * 16));
            wj = Vector512.Create(w[4]);
            a4 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(u, 16).AsSingle(), wj, a4);
            b4 = Avx512F.FusedMultiplyAdd((u & mask).AsSingle(), wj, b4);
            u = Vector512.Load(region + ((nint)r[5] * 16));
            wj = Vector512.Create(w[5]);
            a5 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(u, 16).AsSingle(), wj, a5);
            b5 = Avx512F.FusedMultiplyAdd((u & mask).AsSingle(), wj, b5);
            u = Vector512.Load(region + ((nint)r[6] * 16));
            wj = Vector512.Create(w[6]);
            a6 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(u, 16).AsSingle(), wj, a6);
            b6 = Avx512F.FusedMultiplyAdd((u & mask).AsSingle(), wj, b6);
            u = Vector512.Load(region + ((nint)r[7] * 16));
            wj = Vector512.Create(w[7]);
            a7 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(u, 16).AsSingle(), wj, a7);
            b7 = Avx512F.FusedMultiplyAdd((u & mask).AsSingle(), wj, b7);
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
