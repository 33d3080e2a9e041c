using System.Buffers;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The gather's backward for one table, row by row: every table row's gradient is written once as the weighted sum of
/// the gradient rows that hit it (<see cref="RowHits"/>), and, when asked, each hit's inner product with the row is added
/// to the weight gradient in the same pass (<see cref="RowGradientKernel"/>). Also the token-major inner products for
/// tables that need no gradient.
/// </summary>
/// <remarks>
/// Every sum has a fixed order: a row's hits by ascending token, column tiles ascending, and the squared norm of the
/// written gradient as per-row values added in ascending row order after the parallel pass. So the result, norm
/// included, is the same bits whatever the thread count and whichever thread finishes first (the official CUDA
/// kernel's atomicAdd is not).
/// </remarks>
internal static unsafe class TableGradientPass
{
    /// <summary>
    /// Writes only the touched rows of a reused gradient buffer (small batches): zeroes the rows the previous backward
    /// left non-zero, or the whole buffer when that is unknown, then writes the touched rows, each once as in
    /// <see cref="WriteAll"/>. Returns the squared norm; records the touched rows in the sink.
    /// </summary>
    public static double WriteTouched(RowPass pass, Tensor target, TableGradient sink)
    {
        var csr = pass.Hits;
        int h = pass.Width;
        nint gtPtr = (nint)TensorMemory.Floats(target);
        if (sink.NonZeroRows is not { } previous)
            target.zero_();
        else
        {
            // Rows written by the previous backward, zeroed in parallel and past the cache like the rows written next.
            KernelParallel.For(previous.Length, h, (start, end) =>
            {
                for (int i = start; i < end; i++)
                    RowGradientKernel.Clear((float*)gtPtr + ((long)previous[i] * h), h);
                RowGradientKernel.Fence();
            });
        }
        int[] touched = csr.TouchedRows();
        var squares = ArrayPool<double>.Shared.Rent(touched.Length);
        KernelParallel.For(touched.Length, h * (1L + (csr.Pairs / Math.Max(1, touched.Length))), (start, end) =>
        {
            bool prefetch = pass.Prefetching;
            fixed (float* rounding = pass.RoundDots ? new float[h] : null)
            {
                for (int i = start; i < end; i++)
                {
                    int r = touched[i];
                    if (prefetch && i + 1 < end)
                        pass.Prefetch(touched[i + 1]);
                    squares[i] = pass.Write(r, (float*)gtPtr + ((long)r * h), rowScratch: rounding);
                }
            }
            RowGradientKernel.Fence();
        });
        sink.NonZeroRows = touched;
        return SumInOrder(squares, touched.Length);
    }

    /// <summary>Writes (or adds) every row of one table's gradient; returns the squared norm of the result.</summary>
    public static double WriteAll(RowPass pass, int rowCount, Tensor target, bool accumulate)
    {
        var csr = pass.Hits;
        int h = pass.Width;
        nint gtPtr = (nint)TensorMemory.Floats(target);
        var squares = ArrayPool<double>.Shared.Rent(rowCount);
        KernelParallel.For(rowCount, h * (1L + (csr.Pairs / Math.Max(1, rowCount))), (start, end) =>
        {
            var scratch = accumulate ? new float[h] : null;
            bool prefetch = pass.Prefetching;
            fixed (float* tmp = scratch, rounding = pass.RoundDots ? new float[h] : null)
            {
                for (int r = start; r < end; r++)
                {
                    float* dst = (float*)gtPtr + ((long)r * h);
                    if (prefetch && r + 1 < end)
                        pass.Prefetch(r + 1);
                    if (!accumulate)
                    {
                        squares[r] = pass.Write(r, dst, rowScratch: rounding);
                        continue;
                    }
                    if (pass.HitCount(r) > 0)
                    {
                        pass.Write(r, tmp, rowScratch: rounding);
                        RowKernels.Add(tmp, dst, h);
                    }
                    squares[r] = RowKernels.Dot(dst, dst, h);
                }
            }
            RowGradientKernel.Fence();
        });
        return SumInOrder(squares, rowCount);
    }

    /// <summary>
    /// Applies an armed AdamW step (<see cref="TableUpdate"/>) to every row of the table, each from its gradient row
    /// written into a per-thread row that stays in cache (no table-gradient write); rows without hits get a zero
    /// gradient (decay and momentum, as the dense step does). The row's inner products are taken before its update.
    /// fp32 moments take <see cref="AdamWKernel.UpdateRow"/>, bf16 ones <see cref="Bf16Moments.UpdateRow"/> (element index and
    /// salt as in the optimizer's own step, so the same bits).
    /// With <see cref="RowPass.Table16"/> set, each updated row is also rounded into the table's bf16 copy (<see cref="Bf16TableCopy"/>).
    /// Returns the squared norm of the gradient, summed as <see cref="WriteAll"/> does.
    /// </summary>
    public static double UpdateAll(RowPass pass, int rowCount, BlockedTableGradient.FusedStep step)
    {
        if (ColumnSlicePass.Applies(pass))
            return ColumnSlicePass.Update(pass, rowCount, step);
        if (KernelSettings.Current.UpdateInterleave == 3 && pass.CanTile && step.Bf16 && Avx512F.IsSupported)
            return UpdateWithinHits(pass, rowCount, step);
        if (KernelSettings.Current.UpdateInterleave != 0 && pass.CanTile && step.Bf16)
            return UpdateInterleaved(pass, rowCount, step, KernelSettings.Current.UpdateInterleave == 2);
        int h = pass.Width, block = Math.Max(1, KernelSettings.Current.UpdateBlockRows);
        var squares = ArrayPool<double>.Shared.Rent(rowCount);
        // Non-temporal table and moment rows (KernelSettings.StreamingTableUpdate) unless the bf16 copy reads the new row back at once.
        bool streaming = KernelSettings.Current.StreamingTableUpdate && step.Bf16 && pass.Table16 == 0
            && Bf16Moments.CanStream((float*)pass.Table, (ushort*)step.ExpAvg, (ushort*)step.ExpAvgSq, h);
        KernelParallel.For(rowCount, h * (1L + (pass.Hits.Pairs / Math.Max(1, rowCount))), (start, end) =>
        {
            // The block's gradient rows [block, h] and the rounding row, 64-byte aligned, kept by the thread.
            long stride = (h + 15) & ~15L;
            float* grads = UpdateScratch((block + 1) * stride), rounding = grads + (block * stride);
            bool prefetch = pass.Prefetching;
            int ahead = Sse.IsSupported && KernelSettings.Current.PrefetchUpdateRows ? UpdatePrefetchAhead : 0;
            bool nta = KernelSettings.Current.UpdatePrefetchNonTemporal;
            int hitAhead = KernelSettings.Current.HitPrefetchMode == 3 ? 2 : 1;
            bool lean = KernelSettings.Current.UpdateInterleave == 4 && step.Bf16 && !streaming && pass.Table16 == 0 && Vector512.IsHardwareAccelerated;
            var k = new Bf16Moments.VectorCoefficients512(step.Coefficients);
            for (int first = start; first < end; first += block)
            {
                int last = Math.Min(end, first + block);
                // The block's row pass: gradient rows into the scratch (inner products with the rows not yet updated).
                for (int r = first; r < last; r++)
                {
                    if (prefetch && r + hitAhead < end)
                        pass.Prefetch(r + hitAhead);
                    if (ahead > 0 && r + ahead < end)
                        PrefetchUpdateRows(pass, step, (long)(r + ahead) * h, h, nta);
                    if (ProbeMode != 2)
                        squares[r] = pass.Write(r, grads + ((r - first) * stride), cached: true, rounding);
                }
                if (ProbeMode == 1)
                    continue;
                // Then its AdamW sweep, from the scratch: the same row update in the same order, so the same bits whatever the block.
                for (int r = first; r < last; r++)
                {
                    if (lean)
                    {
                        long o = (long)r * h;
                        Bf16Moments.UpdateRowPrepared((float*)pass.Table + o, grads + ((r - first) * stride), (ushort*)step.ExpAvg + o, (ushort*)step.ExpAvgSq + o,
                            h, k, step.Coefficients, o, step.Salt);
                    }
                    else
                        UpdateRow(pass, step, r, grads + ((r - first) * stride), streaming);
                }
            }
            if (streaming)
                RowGradientKernel.Fence();
        });
        return SumInOrder(squares, rowCount);
    }

    /// <summary>
    /// <see cref="UpdateAll"/> (bf16 moments) with each row's AdamW step cut into 128-column tiles placed between the row pass's tiles
    /// (<see cref="KernelSettings.UpdateInterleave"/>): after tile c of row r's gradient, tile c of row r (<paramref name="lag"/> false)
    /// or of row r − 1 (true) takes its step. Every element's step is the same operations with the same index and salt, and a row's
    /// inner products still read it before its update, so the same bits.
    /// </summary>
    private static double UpdateInterleaved(RowPass pass, int rowCount, BlockedTableGradient.FusedStep step, bool lag)
    {
        int h = pass.Width;
        var squares = ArrayPool<double>.Shared.Rent(rowCount);
        KernelParallel.For(rowCount, h * (1L + (pass.Hits.Pairs / Math.Max(1, rowCount))), (start, end) =>
        {
            float* current = UpdateScratch(2L * h), previous = current + h;
            bool prefetch = pass.Prefetching;
            int ahead = Sse.IsSupported && KernelSettings.Current.PrefetchUpdateRows ? UpdatePrefetchAhead : 0;
            for (int r = start; r < end; r++)
            {
                if (prefetch && r + 1 < end)
                    pass.Prefetch(r + 1);
                if (ahead > 0 && r + ahead < end)
                    PrefetchUpdateRows(pass, step, (long)(r + ahead) * h, h, nta: false);
                int stepped = lag ? r - 1 : r;                               // the row whose tiles take their step here
                float* g = lag ? previous : current;
                if (pass.HitCount(r) == 0)
                {
                    new Span<float>(current, h).Clear();
                    squares[r] = 0;
                    if (stepped >= start)
                        UpdateTiles(pass, step, stepped, g, 0, h);
                }
                else
                {
                    float sum = 0f;
                    for (int c = 0; c < h; c += 128)
                    {
                        sum += pass.WriteTile(r, c, current);
                        if (stepped >= start)
                            UpdateTiles(pass, step, stepped, g, c, 128);
                    }
                    squares[r] = sum;
                }
                float* swap = current;
                current = previous;
                previous = swap;
            }
            if (lag && end > start)
                UpdateTiles(pass, step, end - 1, previous, 0, h);
        });
        return SumInOrder(squares, rowCount);
    }

    /// <summary>
    /// <see cref="UpdateAll"/> (bf16 moments, <see cref="RowPass.CanTile"/>) with the previous row's AdamW step spread over this row's
    /// hits sixteen elements at a time (<see cref="RowGradientKernel.TileWithUpdate"/>); what is left after the row's tiles is finished
    /// at once. The same bits: every element's step is the same operations with its own index, and a row is updated only after its
    /// own inner products.
    /// </summary>
    private static double UpdateWithinHits(RowPass pass, int rowCount, BlockedTableGradient.FusedStep step)
    {
        int h = pass.Width;
        var squares = ArrayPool<double>.Shared.Rent(rowCount);
        KernelParallel.For(rowCount, h * (1L + (pass.Hits.Pairs / Math.Max(1, rowCount))), (start, end) =>
        {
            float* current = UpdateScratch(2L * h), previous = current + h;
            var k = new Bf16Moments.VectorCoefficients512(step.Coefficients);
            bool prefetch = pass.Prefetching;
            int ahead = Sse.IsSupported && KernelSettings.Current.PrefetchUpdateRows ? UpdatePrefetchAhead : 0;
            var u = default(RowGradientKernel.PendingUpdate);
            fixed (int* tok = pass.Hits.Tokens)
            fixed (int* pair = pass.Hits.PairIndex)
            fixed (float* tw = pass.Hits.Weights)
            {
                for (int r = start; r < end; r++)
                {
                    if (prefetch && r + 1 < end)
                        pass.Prefetch(r + 1);
                    if (ahead > 0 && r + ahead < end)
                        PrefetchUpdateRows(pass, step, (long)(r + ahead) * h, h, nta: false);
                    int count = pass.HitCount(r);
                    if (count == 0)
                    {
                        new Span<float>(current, h).Clear();
                        squares[r] = 0;
                    }
                    else
                    {
                        int s = pass.Hits.Starts[r];
                        float* row = (float*)pass.Table + ((long)r * h), gw = (float*)pass.WeightGradient;
                        float sum = 0f;
                        for (int c = 0; c < h; c += 128)
                            sum += RowGradientKernel.TileWithUpdate(row, (float*)pass.GradOut, h, c, tok + s, pair + s, tw + s, count, current, gw, ref u, k, step.Salt);
                        squares[r] = sum;
                    }
                    Finish(ref u, step);
                    long o = (long)r * h;
                    u = new RowGradientKernel.PendingUpdate
                    {
                        P = (float*)pass.Table + o, G = current, M = (ushort*)step.ExpAvg + o, V = (ushort*)step.ExpAvgSq + o, Index = o, Count = h,
                    };
                    float* swap = current;
                    current = previous;
                    previous = swap;
                }
                Finish(ref u, step);
            }
        });
        return SumInOrder(squares, rowCount);
    }

    /// <summary>The rest of a pending update (<see cref="RowGradientKernel.PendingUpdate"/>), by <see cref="Bf16Moments.UpdateRow"/>.</summary>
    private static void Finish(ref RowGradientKernel.PendingUpdate u, BlockedTableGradient.FusedStep step)
    {
        int e = u.Done;
        if (e < u.Count)
            Bf16Moments.UpdateRow(u.P + e, u.G + e, u.M + e, u.V + e, u.Count - e, step.Coefficients, u.Index + e, step.Salt);
        u.Count = 0;
    }

    /// <summary>Columns [c, c + width) of row <paramref name="r"/>'s bf16-moment AdamW step from its gradient row <paramref name="g"/>.</summary>
    private static void UpdateTiles(RowPass pass, BlockedTableGradient.FusedStep step, int r, float* g, int c, int width)
    {
        long o = ((long)r * pass.Width) + c;
        Bf16Moments.UpdateRow((float*)pass.Table + o, g + c, (ushort*)step.ExpAvg + o, (ushort*)step.ExpAvgSq + o, width, step.Coefficients, o, step.Salt);
    }

    /// <summary>
    /// <see cref="UpdateAll"/> for several tables read with the same hits (the shared Q/K/V): each row of every table in one pass,
    /// row by row, the tables in order within a row. A pair's weight gradient takes its tables' inner products in the same order
    /// as table-by-table passes (each pair lies in one row), every table row's gradient and update are the same operations, so
    /// the same bits. Returns each table's squared norm.
    /// </summary>
    public static double[] UpdateAllShared(RowPass[] passes, int rowCount, BlockedTableGradient.FusedStep[] steps)
    {
        int tables = passes.Length, widest = passes.Max(p => p.Width);
        var squares = passes.Select(_ => ArrayPool<double>.Shared.Rent(rowCount)).ToArray();
        KernelParallel.For(rowCount, passes.Sum(p => (long)p.Width) * (1L + (passes[0].Hits.Pairs / Math.Max(1, rowCount))), (start, end) =>
        {
            long stride = (widest + 15) & ~15L;
            float* g = UpdateScratch(2 * stride), rounding = g + stride;
            int ahead = Sse.IsSupported && KernelSettings.Current.PrefetchUpdateRows ? UpdatePrefetchAhead : 0;
            for (int r = start; r < end; r++)
            {
                for (int t = 0; t < tables; t++)
                {
                    var pass = passes[t];
                    if (pass.Prefetching && r + 1 < end)
                        pass.Prefetch(r + 1);
                    if (ahead > 0 && r + ahead < end)
                        PrefetchUpdateRows(pass, steps[t], (long)(r + ahead) * pass.Width, pass.Width, nta: false);
                    squares[t][r] = pass.Write(r, g, cached: true, rounding);
                    UpdateRow(pass, steps[t], r, g, streaming: false);
                }
            }
        });
        return squares.Select(q => SumInOrder(q, rowCount)).ToArray();
    }

    /// <summary>Row <paramref name="r"/>'s AdamW step from its gradient row <paramref name="g"/>, and its bf16 copy's row.</summary>
    private static void UpdateRow(RowPass pass, BlockedTableGradient.FusedStep step, int r, float* g, bool streaming)
    {
        long o = (long)r * pass.Width;
        int h = pass.Width;
        if (step.Bf16)                                                       // the optimizer's own bf16 step: same index and salt, same bits
            Bf16Moments.UpdateRow((float*)pass.Table + o, g, (ushort*)step.ExpAvg + o, (ushort*)step.ExpAvgSq + o, h, step.Coefficients, o, step.Salt, streaming);
        else
            AdamWKernel.UpdateRow((float*)pass.Table + o, g, (float*)step.ExpAvg + o, (float*)step.ExpAvgSq + o, h, step.Coefficients);
        if (pass.Table16 != 0)                                               // the bf16 copy's row, while the new row is in L1
            Bf16TableCopy.WriteRow((float*)pass.Table + o, (ushort*)pass.Table16 + o, h);
    }

    /// <summary>TEMPORARY probe: 1 skips the update, 2 skips the row pass.</summary>
    internal static int ProbeMode { get; set; }

    [ThreadStatic]
    private static nint updateScratch;

    [ThreadStatic]
    private static long updateScratchFloats;

    /// <summary>This thread's scratch of at least <paramref name="floats"/> floats, 64-byte aligned, kept for the thread's life.</summary>
    private static float* UpdateScratch(long floats)
    {
        if (updateScratchFloats < floats)
        {
            if (updateScratch != 0)
                System.Runtime.InteropServices.NativeMemory.AlignedFree((void*)updateScratch);
            updateScratch = (nint)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
            updateScratchFloats = floats;
        }
        return (float*)updateScratch;
    }

    /// <summary>Table rows ahead whose table, m and v rows <see cref="UpdateAll"/> asks for (<see cref="KernelSettings.PrefetchUpdateRows"/>;
    /// <c>perf profile-phases</c>: 1, 2, 4 and 8 alike).</summary>
    public const int UpdatePrefetchAhead = 2;

    /// <summary>
    /// Asks for the table row at element <paramref name="o"/> and its two moments' rows into L2 (<c>prefetcht1</c>): the fused update
    /// reads and writes all three for every row, and the row pass's random ∂L/∂y reads in between keep the hardware prefetcher from
    /// running ahead on them. Into L1 (<c>prefetcht0</c>) this had shown nothing (docs/benchmarks.md, "Memory Layers at d = 256").
    /// A hint only: the same results.
    /// </summary>
    private static void PrefetchUpdateRows(RowPass pass, BlockedTableGradient.FusedStep step, long o, int h, bool nta)
    {
        int momentBytes = step.Bf16 ? sizeof(ushort) : sizeof(float);
        if (nta)
        {
            PrefetchNonTemporal((byte*)((float*)pass.Table + o), h * sizeof(float));
            PrefetchNonTemporal((byte*)step.ExpAvg + (o * momentBytes), h * momentBytes);
            PrefetchNonTemporal((byte*)step.ExpAvgSq + (o * momentBytes), h * momentBytes);
            return;
        }
        RowKernels.PrefetchRow((byte*)((float*)pass.Table + o), h * sizeof(float), l1: false);
        RowKernels.PrefetchRow((byte*)step.ExpAvg + (o * momentBytes), h * momentBytes, l1: false);
        RowKernels.PrefetchRow((byte*)step.ExpAvgSq + (o * momentBytes), h * momentBytes, l1: false);
    }

    /// <summary>Every 64-byte line of a row, <c>prefetchnta</c> (<see cref="KernelSettings.UpdatePrefetchNonTemporal"/>).</summary>
    private static void PrefetchNonTemporal(byte* p, int bytes)
    {
        for (int l = 0; l < bytes; l += 64)
            Sse.PrefetchNonTemporal(p + l);
    }

    /// <summary>Σ values[0..count) in index order, then returns the pooled array: the thread-independent reduction.</summary>
    private static double SumInOrder(double[] values, int count)
    {
        double total = 0;
        for (int i = 0; i < count; i++)
            total += values[i];
        ArrayPool<double>.Shared.Return(values);
        return total;
    }

    /// <summary>gw[i, j] += Σ over <paramref name="dotTables"/> of ⟨grad_t[i], table_t[rows[i, j]]⟩, parallel over tokens; a table
    /// with a non-zero entry in <paramref name="tables16"/> is read from that bf16 copy (<see cref="Bf16TableCopy"/>).</summary>
    public static void AddTokenMajorDots(int[] rows32, int n, int k, int[] dotTables, nint[] tablePtrs, nint[] gradPtrs, int[] widths, nint gwPtr,
        nint[]? tables16 = null)
    {
        KernelParallel.For(n, k * (long)dotTables.Sum(t => widths[t]), (start, end) =>
        {
            float* dst = (float*)gwPtr;
            for (int i = start; i < end; i++)
            {
                for (int j = 0; j < k; j++)
                {
                    int row = rows32[((long)i * k) + j];
                    float sum = 0f;
                    foreach (int t in dotTables)
                    {
                        int h = widths[t];
                        sum += tables16 is not null && tables16[t] != 0
                            ? Bf16TableCopy.Dot((float*)gradPtrs[t] + ((long)i * h), (ushort*)tables16[t] + ((long)row * h), h)
                            : RowKernels.Dot((float*)gradPtrs[t] + ((long)i * h), (float*)tablePtrs[t] + ((long)row * h), h);
                    }
                    dst[((long)i * k) + j] += sum;
                }
            }
        });
    }

    /// <summary>
    /// One table's row-by-row backward: writes a table row's gradient from its hits and, when <see cref="WeightGradient"/>
    /// is set, adds the hits' inner products with the row to the weight gradient in the same pass (<see cref="RowGradientKernel"/>).
    /// With <see cref="GradOut16"/> set (the paired bf16 copy of ∂L/∂y, <see cref="Bf16GradientRows"/>) every hit reads that
    /// instead of <see cref="GradOut"/> (<see cref="Bf16RowGradientKernel"/>). With <see cref="RoundDots"/> (the forward read the
    /// table's bf16 copy) the inner products take the row rounded to bf16, the values the forward used; <see cref="Table16"/>, when
    /// set, is that copy, which <see cref="UpdateAll"/> keeps current.
    /// </summary>
    public readonly record struct RowPass(RowHits Hits, nint Table, nint GradOut, int Width, nint WeightGradient, nint GradOut16 = 0,
        nint Table16 = 0, bool RoundDots = false)
    {
        /// <summary>Hits of row <paramref name="r"/>; rows past the sorted range (a larger table than the smallest) have none.</summary>
        public int HitCount(int r) => r < Hits.RowCount ? Hits.Starts[r + 1] - Hits.Starts[r] : 0;

        /// <summary>Whether the passes call <see cref="Prefetch(int)"/> (<see cref="KernelSettings.PrefetchHitRows"/>, x86 only; with bf16 rows
        /// only where <see cref="PrefetchBf16Rows"/> asks: the 256-column bf16 kernel ran 1.3–1.4× faster without it, <c>perf probe-rowpass</c>).</summary>
        public bool Prefetching => Sse.IsSupported && KernelSettings.Current.PrefetchHitRows && (GradOut16 == 0 || PrefetchBf16Rows);

        /// <summary>Whether <see cref="RoundDots"/> is honoured (on; a probe switch: off takes the fp32 row's inner products, to time the rounding).</summary>
        internal static bool RoundDotRows { get; set; } = true;

        /// <summary>Whether a pass over bf16 ∂L/∂y rows prefetches them too (off; a probe switch).</summary>
        internal static bool PrefetchBf16Rows { get; set; }

        /// <summary>
        /// Asks for the first cache line of each of row <paramref name="r"/>'s ∂L/∂y rows while the caller still works on
        /// the row before: they are random reads from [N, h], in L2 or L3; the hardware prefetcher follows the rest of
        /// each row. Asking for every line of every hit (32 KB a row at h = 512, 16 hits) filled L1 with the next row
        /// and evicted the current one's lines, which its four column tiles read four times: that cost 1.5 to 2 ms of
        /// an 8 ms row pass (<c>perf profile</c>, docs/benchmarks.md "Backward row pass, JIT codegen"). A hint only:
        /// the results are the same bits.
        /// </summary>
        public void Prefetch(int r) => Prefetch(r, 0);

        /// <summary><see cref="Prefetch(int)"/> of the line at column <paramref name="column"/> of each hit's fp32 ∂L/∂y row.</summary>
        public void Prefetch(int r, int column)
        {
            int count = HitCount(r);
            if (count == 0)
                return;
            fixed (int* tok = Hits.Tokens)
            {
                int* t = tok + Hits.Starts[r];
                if (GradOut16 != 0)
                {
                    for (int j = 0; j < count; j++)
                        Sse.Prefetch0((byte*)((uint*)GradOut16 + ((long)t[j] * (Width / 2))));
                    return;
                }
                int mode = KernelSettings.Current.HitPrefetchMode;
                if (mode == 4)
                {
                    for (int j = 0; j < count; j++)
                        Sse.Prefetch1((byte*)((float*)GradOut + ((long)t[j] * Width) + column));
                    return;
                }
                if (mode == 0 || mode == 3)
                {
                    for (int j = 0; j < count; j++)
                        Sse.Prefetch0((byte*)((float*)GradOut + ((long)t[j] * Width) + column));
                    return;
                }
                for (int j = 0; j < count; j++)
                    RowKernels.PrefetchRow((byte*)((float*)GradOut + ((long)t[j] * Width)), Width * sizeof(float), l1: mode == 1);
                if (mode == 2)
                {
                    for (int j = 0; j < count; j++)
                        Sse.Prefetch0((byte*)((float*)GradOut + ((long)t[j] * Width)));
                }
            }
        }

        /// <summary>Whether <see cref="WriteTile"/> serves this pass: AVX-512, widths of whole 128-column tiles, fp32 ∂L/∂y, the weight
        /// gradient wanted, no bf16 table copy to read or keep.</summary>
        public bool CanTile => Vector512.IsHardwareAccelerated && Width % 128 == 0 && GradOut16 == 0 && WeightGradient != 0 && !RoundDots && Table16 == 0;

        /// <summary>Columns [c, c + 128) of <see cref="Write"/> for a row with hits (<see cref="CanTile"/>): dst[c..c + 128) and their share of ‖dst‖².</summary>
        public float WriteTile(int r, int c, float* dst)
        {
            int s = Hits.Starts[r], count = Hits.Starts[r + 1] - s;
            fixed (int* tok = Hits.Tokens)
            fixed (int* pair = Hits.PairIndex)
            fixed (float* tw = Hits.Weights)
                return RowGradientKernel.Tile((float*)Table + ((long)r * Width), (float*)GradOut, Width, c, tok + s, pair + s, tw + s, count, dst, (float*)WeightGradient);
        }

        /// <summary>dst = row r's table gradient (zeros without hits), and the weight gradient's share of row r; returns ‖dst‖².</summary>
        /// <param name="r">The row.</param>
        /// <param name="dst">Where the gradient row goes.</param>
        /// <param name="cached">Write through the cache: the caller reads <paramref name="dst"/> at once.</param>
        /// <param name="rowScratch">The calling thread's row of <see cref="Width"/> floats for the rounded table row (needed with <see cref="RoundDots"/>).</param>
        public double Write(int r, float* dst, bool cached = false, float* rowScratch = null)
        {
            int count = HitCount(r), s = count == 0 ? 0 : Hits.Starts[r];
            if (count == 0)
            {
                if (cached)
                    new Span<float>(dst, Width).Clear();
                else
                    RowGradientKernel.Clear(dst, Width);
                return 0;
            }
            float* row = (float*)Table + ((long)r * Width);
            if (RoundDots && RoundDotRows && WeightGradient != 0 && rowScratch != null)
            {
                float* rounded = rowScratch;
                if (Table16 != 0)                                            // the copy's row, widened: the values the forward read
                    Bf16TableCopy.WidenRow((ushort*)Table16 + ((long)r * Width), rounded, Width);
                else
                    Bf16TableCopy.RoundRow(row, rounded, Width);
                row = rounded;
            }
            fixed (int* tok = Hits.Tokens)
            fixed (int* pair = Hits.PairIndex)
            fixed (float* tw = Hits.Weights)
            {
                if (GradOut16 != 0)
                    return Bf16RowGradientKernel.Run(row, (uint*)GradOut16, Width, tok + s, pair + s, tw + s, count,
                        dst, (float*)WeightGradient, cached);
                if (WeightGradient != 0)
                    return RowGradientKernel.Run(row, (float*)GradOut, Width, tok + s, pair + s, tw + s, count,
                        dst, (float*)WeightGradient, cached);
                RowKernels.WeightedBagSum((float*)GradOut, Width, tok + s, tw + s, count, dst);
                return RowKernels.Dot(dst, dst, Width);
            }
        }
    }
}
