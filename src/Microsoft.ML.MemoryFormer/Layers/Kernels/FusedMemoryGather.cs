using System.Buffers;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The Memory Layer's weighted gather as one custom autograd function (spec §1.3–1.6, §5.1; issue 7):
/// <c>y[n, :] = Σ_k w[n, k] · table[row[n, k], :]</c> for rows int64 [N, K] (global rows, the chunk offset
/// k·2^τ already added), weights fp32 [N, K] and one or more tables fp32 [R, h], plus optionally each table's
/// bias [h], which then starts the sum (one pass over the output instead of a separate add and its autograd node).
/// </summary>
/// <remarks>
/// <para>CPU fp32 runs managed SIMD kernels (<see cref="RowKernels"/>), parallel over tokens. Anything else
/// (CUDA, fp16/bf16) runs <see cref="Reference"/>, a plain torch-ops path; <see cref="IsSupported(Tensor)"/>
/// says which one a tensor gets.</para>
/// <para>Backward, following the official CUDA kernel's <c>WeightedVectorGatherAdd.backward</c>:
/// <c>∂L/∂w[n, k] = Σ_tables ⟨∂L/∂y[n], table[row[n, k]]⟩</c> and
/// <c>∂L/∂table[r] = Σ_{(n, k): row[n, k] = r} w[n, k] · ∂L/∂y[n]</c>. Both come from one pass over table rows: the
/// (n, k) hits are counting-sorted by row once (shared by all tables), then every table row is written exactly once
/// as a weighted sum of the gradient rows that hit it, accumulated in registers, and each hit's inner product with the
/// row is added to the weight gradient while its gradient row is loaded (<see cref="RowGradientKernel"/>). Untouched
/// rows get zeros in the same pass, so there is no separate zero-fill and no read-modify-write of the gradient, and
/// the sum orders (tokens ascending; tables, then column tiles ascending) do not depend on the thread count: the
/// result is deterministic, unlike the CUDA kernel's atomicAdd (§5.3 pitfall 9). The rows receive no gradient.
/// When the batch touches at most a quarter of a table's rows and the gradient goes into the layer's reused buffer,
/// only the touched rows are written, after zeroing the rows the previous backward had written
/// (<see cref="TableGradient.NonZeroRows"/>): at N = 1–64 this replaces a table-sized pass. A table that needs no
/// gradient (frozen) has its inner products taken token by token instead.</para>
/// <para>Several tables read with the same rows and weights (Q, K and V share one hash, §5.3 pitfall 7) go
/// through <see cref="ApplyMany"/> in one node: the rows are validated and sorted once, and the weight gradient
/// sums all tables' inner products in one pass.</para>
/// </remarks>
internal static class FusedMemoryGather
{
    /// <summary>True when <paramref name="tensor"/> (a table or the weights) takes the managed CPU kernel.</summary>
    public static bool IsSupported(Tensor tensor)
    {
        return TensorMemory.IsCpuFloat32(tensor);
    }

    /// <summary>y [N, h] = Σ_k weights[:, k] · table[rows[:, k]]; differentiable in weights and table.</summary>
    /// <param name="rows">int64 [N, K], global table rows.</param>
    /// <param name="weights">[N, K], the per-chunk weights (the hash's score).</param>
    /// <param name="table">[R, h], the Memory Layer's table parameter.</param>
    public static Tensor Apply(Tensor rows, Tensor weights, Tensor table)
    {
        return ApplyMany(rows, weights, [table])[0];
    }

    /// <summary>
    /// One output per table, all read with the same rows and weights, computed and differentiated in one node.
    /// </summary>
    /// <param name="rows">int64 [N, K], global table rows.</param>
    /// <param name="weights">[N, K], the per-chunk weights.</param>
    /// <param name="tables">Tables [R_t, h_t]; every row index must be below every table's row count.</param>
    /// <param name="gradients">Optional, one per table: a reusable gradient buffer the backward writes and sets as the
    /// table's <c>grad</c> (see <see cref="TableGradient"/>); null entries, or no list, hand autograd a fresh tensor.</param>
    /// <param name="biases">Optional, one [h_t] bias per table, added to its output (and differentiated) in the same
    /// node; null adds none.</param>
    public static Tensor[] ApplyMany(Tensor rows, Tensor weights, IReadOnlyList<Tensor> tables,
        IReadOnlyList<TableGradient?>? gradients = null, IReadOnlyList<Tensor>? biases = null)
    {
        ArgumentNullException.ThrowIfNull(tables);
        if (tables.Count == 0)
            throw new ArgumentException("At least one table is needed.", nameof(tables));
        Validate(rows, weights, tables, biases);

        bool managed = rows.device_type == DeviceType.CPU && IsSupported(weights) && tables.All(IsSupported)
            && (biases is null || biases.All(IsSupported));
        if (!managed)
            return tables.Select((t, i) => biases is null ? Reference(rows, weights, t) : Reference(rows, weights, t).add_(biases[i])).ToArray();

        int tableCount = tables.Count, biasCount = biases?.Count ?? 0;
        var args = new object[tableCount + biasCount + 3];
        args[0] = rows;
        args[1] = weights;
        for (int t = 0; t < tableCount; t++)
            args[t + 2] = tables[t];
        for (int t = 0; t < biasCount; t++)
            args[tableCount + t + 2] = biases![t];
        // Decided here: the function's forward itself runs with grad mode off, as in PyTorch.
        bool backwardPossible = is_grad_enabled()
            && (weights.requires_grad || tables.Any(t => t.requires_grad) || (biases?.Any(b => b.requires_grad) ?? false));
        args[^1] = new GradientSinks(tables.ToArray(), gradients?.ToArray() ?? new TableGradient?[tableCount], backwardPossible, biasCount > 0);
        return GatherFunction.apply(args).ToArray();
    }

    /// <summary>
    /// The torch-ops path: <c>index_select</c> then a batched weighted sum. It materialises [N, K, h], which is
    /// fine on a GPU and is the fallback there; on the CPU the managed kernel is used instead.
    /// </summary>
    public static Tensor Reference(Tensor rows, Tensor weights, Tensor table)
    {
        long n = rows.shape[0], k = rows.shape[1], h = table.shape[1];
        using var scope = NewDisposeScope();
        var gathered = table.index_select(0, rows.reshape(-1)).view(n, k, h);          // [N, K, h]
        var y = bmm(weights.to(table.dtype).unsqueeze(1), gathered).squeeze(1);          // [N, h]
        return y.MoveToOuterDisposeScope();
    }

    private static void Validate(Tensor rows, Tensor weights, IReadOnlyList<Tensor> tables, IReadOnlyList<Tensor>? biases)
    {
        if (biases is not null && (biases.Count != tables.Count
            || biases.Zip(tables).Any(p => p.First.dim() != 1 || p.First.shape[0] != p.Second.shape[1])))
            throw new ArgumentException($"biases must be one [h] per table, got {string.Join(", ", biases.Select(Shape))} for tables " +
                $"{string.Join(", ", tables.Select(Shape))}.", nameof(biases));
        if (rows.dtype != ScalarType.Int64 || rows.dim() != 2)
            throw new ArgumentException($"rows must be int64 [N, K], got {rows.dtype} {Shape(rows)}.", nameof(rows));
        if (weights.dim() != 2 || weights.shape[0] != rows.shape[0] || weights.shape[1] != rows.shape[1])
            throw new ArgumentException($"weights must be [N, K] like rows {Shape(rows)}, got {Shape(weights)}.", nameof(weights));
        foreach (var table in tables)
        {
            if (table.dim() != 2)
                throw new ArgumentException($"Each table must be [R, h], got {Shape(table)}.", nameof(tables));
            if (table.shape[0] > int.MaxValue || table.shape[0] * table.shape[1] > (1L << 40))
                throw new ArgumentException("Table too large for the kernel's index types.", nameof(tables));
        }
        if (rows.shape[0] * rows.shape[1] > int.MaxValue)
            throw new ArgumentException("Too many (token, chunk) pairs for one call.", nameof(rows));
    }

    private static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";

    /// <summary>The autograd node: inputs (rows, weights, table_0..table_{T-1}), outputs y_0..y_{T-1}.</summary>
    private sealed class GatherFunction : autograd.MultiTensorFunction<GatherFunction>
    {
        public override string Name => nameof(FusedMemoryGather);

        public override unsafe List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var rows = (Tensor)vars[0];
            var weights = (Tensor)vars[1];
            var sinks = (GradientSinks)vars[^1];
            int tableCount = sinks.Tables.Length;
            var tables = new Tensor[tableCount];
            for (int t = 0; t < tableCount; t++)
                tables[t] = (Tensor)vars[t + 2];

            int n = (int)rows.shape[0], k = (int)rows.shape[1];
            long rowLimit = tables.Min(t => t.shape[0]);
            var rows32 = PooledRows.From(rows, rowLimit);

            using var scope = NewDisposeScope();
            var biases = sinks.HasBias ? Enumerable.Range(0, tableCount).Select(t => ((Tensor)vars[tableCount + t + 2]).contiguous()).ToArray() : null;
            var w = weights.contiguous();
            var tablesC = tables.Select(t => t.contiguous()).ToArray();
            var outputs = tables.Select(t => empty(n, t.shape[1], dtype: ScalarType.Float32)).ToArray();

            nint wPtr = (nint)TensorMemory.Floats(w);
            var tablePtrs = tablesC.Select(t => (nint)TensorMemory.Floats(t)).ToArray();
            var outPtrs = outputs.Select(o => (nint)TensorMemory.Floats(o)).ToArray();
            var biasPtrs = biases?.Select(b => (nint)TensorMemory.Floats(b)).ToArray() ?? new nint[tableCount];
            var widths = tables.Select(t => (int)t.shape[1]).ToArray();
            long work = k * (long)widths.Sum();

            KernelParallel.For(n, work, (start, end) =>
            {
                fixed (int* r = rows32.Array)
                {
                    for (int t = 0; t < tableCount; t++)
                    {
                        int h = widths[t];
                        float* src = (float*)tablePtrs[t], dst = (float*)outPtrs[t], wp = (float*)wPtr, bias = (float*)biasPtrs[t];
                        for (int i = start; i < end; i++)
                            RowKernels.WeightedBagSum(src, h, r + ((long)i * k), wp + ((long)i * k), k, dst + ((long)i * h), bias);
                    }
                }
            });

            if (!sinks.BackwardPossible)
            {
                rows32.Return();                                                 // no backward will read them
                return outputs.Select(o => o.MoveToOuterDisposeScope()).ToList();
            }
            ctx.save_for_backward([weights, .. tables]);
            ctx.save_data("rows", rows32);
            ctx.save_data("k", k);
            ctx.save_data("sinks", vars[^1]);
            ctx.save_data("weightsNeedGrad", weights.requires_grad);
            ctx.save_data("tablesNeedGrad", tables.Select(t => t.requires_grad).ToArray());
            ctx.save_data("biasesNeedGrad", sinks.HasBias ? Enumerable.Range(0, tableCount).Select(t => ((Tensor)vars[tableCount + t + 2]).requires_grad).ToArray() : Array.Empty<bool>());
            return outputs.Select(o => o.MoveToOuterDisposeScope()).ToList();
        }

        public override unsafe List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs)
        {
            var pooled = (PooledRows)ctx.get_data("rows");
            var rows32 = pooled.Array ?? throw new InvalidOperationException(
                "FusedMemoryGather's backward ran twice on one graph (retain_graph); it returns its buffers after the first. " +
                "Set TorchRuntime.UseFusedKernels = false for double backward.");
            int k = (int)ctx.get_data("k");
            bool weightsNeedGrad = (bool)ctx.get_data("weightsNeedGrad");
            var tablesNeedGrad = (bool[])ctx.get_data("tablesNeedGrad");
            var sinks = (GradientSinks)ctx.get_data("sinks");
            int n = pooled.Count / k;
            int tableCount = tablesNeedGrad.Length;

            var saved = ctx.get_saved_variables();
            var result = new List<Tensor> { null!, null! };
            using (var scope = NewDisposeScope())
            {
                var w = saved[0].contiguous();
                var tables = saved.Skip(1).Select(t => t.contiguous()).ToArray();
                var grads = grad_outputs.Select(g => g.to(ScalarType.Float32).contiguous()).ToArray();
                var widths = tables.Select(t => (int)t.shape[1]).ToArray();
                var gradPtrs = grads.Select(g => (nint)TensorMemory.Floats(g)).ToArray();
                nint wPtr = (nint)TensorMemory.Floats(w);

                // The weight gradient: the row pass of each table that needs a gradient adds its inner products
                // (RowGradientKernel); any other table's products are added here, token by token.
                bool rowPassDots = weightsNeedGrad && WeightGradientInRowPass && RowGradientKernel.IsAccelerated;
                var tablePtrs = tables.Select(t => (nint)TensorMemory.Floats(t)).ToArray();
                nint gwPtr = 0;
                if (weightsNeedGrad)
                {
                    var gw = zeros(n, k, dtype: ScalarType.Float32);
                    gwPtr = (nint)TensorMemory.Floats(gw);
                    var dotTables = Enumerable.Range(0, tableCount).Where(t => !(rowPassDots && tablesNeedGrad[t])).ToArray();
                    if (dotTables.Length > 0)
                        AddTokenMajorDots(rows32, n, k, dotTables, tablePtrs, gradPtrs, widths, gwPtr);
                    result[1] = gw.MoveToOuterDisposeScope();
                }
                nint rowPassGw = rowPassDots ? gwPtr : 0;

                RowHits? hits = null;
                for (int t = 0; t < tableCount; t++)
                {
                    if (!tablesNeedGrad[t])
                    {
                        result.Add(null!);
                        continue;
                    }
                    hits ??= RowHits.Build(rows32, pooled.Count, k, (float*)wPtr, (int)tables.Min(x => x.shape[0]), pooled.Chunked);
                    int rowCount = (int)tables[t].shape[0];
                    int h = widths[t];
                    var sink = sinks.Gradients[t];
                    var existing = sink is null ? null : sinks.Tables[t].grad;
                    bool useSink = sink is not null && (existing is null || existing.IsInvalid
                        || (TensorMemory.IsCpuFloat32(existing) && existing.is_contiguous() && existing.shape.SequenceEqual(tables[t].shape)));
                    bool accumulate = useSink && existing is not null && !existing.IsInvalid;
                    var gt = !useSink ? empty(rowCount, h, dtype: ScalarType.Float32) : accumulate ? existing! : sink!.Rent(tables[t]);
                    var pass = new RowPass(hits!, tablePtrs[t], gradPtrs[t], h, rowPassGw);
                    bool sparse = useSink && !accumulate && WriteTouchedRowsOnly && hits!.TouchedCount <= rowCount / SparseFraction;
                    double squaredNorm = sparse ? WriteSparseTableGradient(pass, gt, sink!) : WriteTableGradient(pass, rowCount, gt, accumulate);
                    if (useSink && !sparse)
                        sink!.NonZeroRows = null;                                // every row written: unknown zeros
                    if (!useSink)
                    {
                        result.Add(gt.MoveToOuterDisposeScope());
                        continue;
                    }
                    if (!accumulate)
                        sinks.Tables[t].grad = gt;
                    sink!.Record(squaredNorm);
                    result.Add(null!);
                }
                hits?.Dispose();
                // The biases' gradients: ∂L/∂b_t = Σ_n ∂L/∂y_t[n].
                var biasesNeedGrad = (bool[])ctx.get_data("biasesNeedGrad");
                for (int t = 0; t < biasesNeedGrad.Length; t++)
                    result.Add(biasesNeedGrad[t] ? grads[t].sum(0L).MoveToOuterDisposeScope() : null!);
            }
            pooled.Return();
            foreach (var s in saved)
                s.Dispose();
            result.Add(null!);                                                   // the gradient sinks argument
            return result;
        }

        /// <summary>
        /// Writes only the touched rows of a reused gradient buffer (small batches): zeroes the rows the previous
        /// backward left non-zero, or the whole buffer when that is unknown, then writes the touched rows, each once as
        /// in <see cref="WriteTableGradient"/>. Returns the squared norm; records the touched rows in the sink.
        /// </summary>
        private static unsafe double WriteSparseTableGradient(RowPass pass, Tensor target, TableGradient sink)
        {
            var csr = pass.Hits;
            int h = pass.Width;
            float* gt = TensorMemory.Floats(target);
            nint gtPtr = (nint)gt;
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
            double total = 0;
            var gate = new Lock();
            KernelParallel.For(touched.Length, h * (1L + (csr.Pairs / Math.Max(1, touched.Length))), (start, end) =>
            {
                double partial = 0;
                for (int i = start; i < end; i++)
                {
                    int r = touched[i];
                    partial += pass.Write(r, (float*)gtPtr + ((long)r * h));
                }
                RowGradientKernel.Fence();
                lock (gate)
                    total += partial;
            });
            sink.NonZeroRows = touched;
            return total;
        }

        /// <summary>Writes (or adds) every row of one table's gradient; returns the squared norm of the result.</summary>
        private static unsafe double WriteTableGradient(RowPass pass, int rowCount, Tensor target, bool accumulate)
        {
            var csr = pass.Hits;
            int h = pass.Width;
            nint gtPtr = (nint)TensorMemory.Floats(target);
            double total = 0;
            var gate = new Lock();
            KernelParallel.For(rowCount, h * (1L + (csr.Pairs / Math.Max(1, rowCount))), (start, end) =>
            {
                var scratch = accumulate ? new float[h] : null;
                double partial = 0;
                fixed (float* tmp = scratch)
                {
                    for (int r = start; r < end; r++)
                    {
                        float* dst = (float*)gtPtr + ((long)r * h);
                        if (!accumulate)
                        {
                            partial += pass.Write(r, dst);
                            continue;
                        }
                        if (pass.HitCount(r) > 0)
                        {
                            pass.Write(r, tmp);
                            RowKernels.Add(tmp, dst, h);
                        }
                        partial += RowKernels.Dot(dst, dst, h);
                    }
                }
                RowGradientKernel.Fence();
                lock (gate)
                    total += partial;
            });
            return total;
        }
    }

    /// <summary>gw[i, j] += Σ over <paramref name="dotTables"/> of ⟨grad_t[i], table_t[rows[i, j]]⟩, parallel over tokens.</summary>
    private static unsafe void AddTokenMajorDots(int[] rows32, int n, int k, int[] dotTables, nint[] tablePtrs, nint[] gradPtrs, int[] widths, nint gwPtr)
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
                        sum += RowKernels.Dot((float*)gradPtrs[t] + ((long)i * h), (float*)tablePtrs[t] + ((long)row * h), h);
                    }
                    dst[((long)i * k) + j] += sum;
                }
            }
        });
    }

    /// <summary>
    /// One table's row-by-row backward: writes a table row's gradient from its hits and, when <see cref="WeightGradient"/>
    /// is set, adds the hits' inner products with the row to the weight gradient in the same pass (<see cref="RowGradientKernel"/>).
    /// </summary>
    private readonly record struct RowPass(RowHits Hits, nint Table, nint GradOut, int Width, nint WeightGradient)
    {
        /// <summary>Hits of row <paramref name="r"/>; rows past the sorted range (a larger table than the smallest) have none.</summary>
        public int HitCount(int r) => r < Hits.RowCount ? Hits.Starts[r + 1] - Hits.Starts[r] : 0;

        /// <summary>dst = row r's table gradient (zeros without hits), and the weight gradient's share of row r; returns ‖dst‖².</summary>
        public unsafe double Write(int r, float* dst)
        {
            int count = HitCount(r), s = count == 0 ? 0 : Hits.Starts[r];
            if (count == 0)
            {
                RowGradientKernel.Clear(dst, Width);
                return 0;
            }
            fixed (int* tok = Hits.Tokens)
            fixed (int* pair = Hits.PairIndex)
            fixed (float* tw = Hits.Weights)
            {
                if (WeightGradient != 0)
                    return RowGradientKernel.Run((float*)Table + ((long)r * Width), (float*)GradOut, Width, tok + s, pair + s, tw + s, count,
                        dst, (float*)WeightGradient);
                RowKernels.WeightedBagSum((float*)GradOut, Width, tok + s, tw + s, count, dst);
                return RowKernels.Dot(dst, dst, Width);
            }
        }
    }

    /// <summary>A backward touching at most 1/this of a table's rows writes only those rows of a reused buffer.</summary>
    private const int SparseFraction = 4;

    /// <summary>
    /// Whether small backwards write only the touched rows of the reused gradient buffer (see <see cref="TableGradient"/>);
    /// on by default, off to measure the whole-table write it replaces.
    /// </summary>
    internal static bool WriteTouchedRowsOnly { get; set; } = true;

    /// <summary>
    /// Whether the table gradient's row pass also computes the weight gradient (<see cref="RowGradientKernel"/>); on by
    /// default, off to measure the separate token-major pass it replaces.
    /// </summary>
    internal static bool WeightGradientInRowPass { get; set; } = true;

    /// <summary>
    /// Whether Memory Layers pass their bias to the gather, which then starts each output row from it; on by default, off
    /// to measure the separate add (and its autograd node) it replaces.
    /// </summary>
    internal static bool FoldBias { get; set; } = true;

    /// <summary>The tables as passed in (their <c>grad</c> is set in the backward), their optional gradient buffers, and
    /// whether a backward can follow (grad mode on and something requires grad when the node was applied).</summary>
    private sealed record GradientSinks(Tensor[] Tables, TableGradient?[] Gradients, bool BackwardPossible, bool HasBias);

    /// <summary>
    /// The int32 row index of every (token, chunk) pair, in a pooled array kept from the forward to the backward.
    /// Pooled because a fresh N·K array per call lands on the large-object heap, and the training soak showed such
    /// per-step garbage piling up to gigabytes between full collections.
    /// </summary>
    private sealed class PooledRows
    {
        /// <summary>The pooled array (longer than <see cref="Count"/>); null once returned.</summary>
        public int[]? Array { get; private set; }

        /// <summary>Number of pairs (N·K).</summary>
        public int Count { get; private init; }

        /// <summary>Whether chunk k reads only its own block of rowLimit / K rows, as a Memory Layer's hash gives (<see cref="RowHits"/>).</summary>
        public bool Chunked { get; private init; }

        /// <summary>Copies <paramref name="rows"/> (int64 [N, K]) to int32, checking every index is in [0, rowLimit).</summary>
        public static unsafe PooledRows From(Tensor rows, long rowLimit)
        {
            using var scope = NewDisposeScope();
            var r = rows.contiguous();
            int count = (int)r.numel(), k = (int)Math.Max(1, r.shape[1]);
            long* p = TensorMemory.Longs(r);
            var array = ArrayPool<int>.Shared.Rent(count);
            int blockRows = rowLimit % k == 0 ? (int)(rowLimit / k) : 0;
            bool chunked = blockRows > 0;
            long bad = -1;
            for (int i = 0; i < count;)
            {
                for (int c = 0; c < k; c++, i++)
                {
                    long v = p[i];
                    if ((ulong)v >= (ulong)rowLimit)
                        bad = i;
                    array[i] = (int)v;
                    chunked &= RowHits.IsChunked((int)v, c, blockRows);
                }
            }
            var result = new PooledRows { Array = array, Count = count, Chunked = chunked };
            if (bad >= 0)
            {
                result.Return();
                throw new ArgumentOutOfRangeException(nameof(rows), $"Row index {p[bad]} at flat position {bad} is outside [0, {rowLimit}).");
            }
            return result;
        }

        /// <summary>Gives the array back to the pool (once).</summary>
        public void Return()
        {
            if (Array is { } array) ArrayPool<int>.Shared.Return(array);
            Array = null;
        }
    }
}
