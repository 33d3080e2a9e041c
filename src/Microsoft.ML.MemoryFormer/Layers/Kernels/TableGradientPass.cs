using System.Buffers;
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
    /// With <see cref="RowPass.Table16"/> set, each updated row is also rounded into the table's bf16 copy (<see cref="Bf16TableCopy"/>);
    /// with <see cref="RowPass.TileMajor"/>, its 16-column slices are written into the kept tile-major copy (<see cref="TileMajorTableCopy"/>).
    /// Returns the squared norm of the gradient, summed as <see cref="WriteAll"/> does.
    /// </summary>
    public static double UpdateAll(RowPass pass, int rowCount, BlockedTableGradient.FusedStep step)
    {
        int h = pass.Width;
        var squares = ArrayPool<double>.Shared.Rent(rowCount);
        KernelParallel.For(rowCount, h * (1L + (pass.Hits.Pairs / Math.Max(1, rowCount))), (start, end) =>
        {
            var row = new float[(2 * h) + 16];
            bool prefetch = pass.Prefetching;
            fixed (float* buffer = row)
            {
                float* g = buffer, rounding = buffer + h + 16;
                int ahead = Sse.IsSupported && KernelSettings.Current.PrefetchUpdateRows ? UpdatePrefetchAhead : 0;
                for (int r = start; r < end; r++)
                {
                    long o = (long)r * h;
                    if (prefetch && r + 1 < end)
                        pass.Prefetch(r + 1);
                    if (ahead > 0 && r + ahead < end)
                        PrefetchUpdateRows(pass, step, o + ((long)ahead * h), h);
                    squares[r] = pass.Write(r, g, cached: true, rounding);
                    if (step.Bf16)                                               // the optimizer's own bf16 step: same index and salt, same bits
                        Bf16Moments.UpdateRow((float*)pass.Table + o, g, (ushort*)step.ExpAvg + o, (ushort*)step.ExpAvgSq + o, h, step.Coefficients, o, step.Salt);
                    else
                        AdamWKernel.UpdateRow((float*)pass.Table + o, g, (float*)step.ExpAvg + o, (float*)step.ExpAvgSq + o, h, step.Coefficients);
                    if (pass.Table16 != 0)                                       // the bf16 copy's row, while the new row is in L1
                        Bf16TableCopy.WriteRow((float*)pass.Table + o, (ushort*)pass.Table16 + o, h);
                    if (pass.TileMajor != 0)                                     // the tile-major copy's slices, likewise
                        TileMajorTableCopy.WriteRow((float*)pass.Table + o, h, rowCount, (float*)pass.TileMajor, r);
                }
            }
            if (pass.TileMajor != 0)
                Sse.StoreFence();                                                // the non-temporal slices, before another thread reads them
        });
        return SumInOrder(squares, rowCount);
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
    private static void PrefetchUpdateRows(RowPass pass, BlockedTableGradient.FusedStep step, long o, int h)
    {
        RowKernels.PrefetchRow((byte*)((float*)pass.Table + o), h * sizeof(float), l1: false);
        int momentBytes = step.Bf16 ? sizeof(ushort) : sizeof(float);
        RowKernels.PrefetchRow((byte*)step.ExpAvg + (o * momentBytes), h * momentBytes, l1: false);
        RowKernels.PrefetchRow((byte*)step.ExpAvgSq + (o * momentBytes), h * momentBytes, l1: false);
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
    /// set, is that copy, which <see cref="UpdateAll"/> keeps current; so is <see cref="TileMajor"/>, when set, the table's kept
    /// tile-major copy [h/16][R][16] (<see cref="TileMajorTableCopy"/>).
    /// </summary>
    public readonly record struct RowPass(RowHits Hits, nint Table, nint GradOut, int Width, nint WeightGradient, nint GradOut16 = 0,
        nint Table16 = 0, bool RoundDots = false, nint TileMajor = 0)
    {
        /// <summary>Hits of row <paramref name="r"/>; rows past the sorted range (a larger table than the smallest) have none.</summary>
        public int HitCount(int r) => r < Hits.RowCount ? Hits.Starts[r + 1] - Hits.Starts[r] : 0;

        /// <summary>Whether the passes call <see cref="Prefetch"/> (<see cref="KernelSettings.PrefetchHitRows"/>, x86 only; with bf16 rows
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
        public void Prefetch(int r)
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
                for (int j = 0; j < count; j++)
                    Sse.Prefetch0((byte*)((float*)GradOut + ((long)t[j] * Width)));
            }
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
