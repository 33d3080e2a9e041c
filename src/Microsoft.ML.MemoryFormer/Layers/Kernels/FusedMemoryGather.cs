using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The Memory Layer's weighted gather on the CPU in fp32 as one custom autograd function (docs/model-spec.md,
/// "Memory Layer"): <c>y[n, :] = Σ_k w[n, k] · table[row[n, k], :]</c> for rows int64 [N, K] (global rows, the chunk
/// offset k·2^τ already added), weights [N, K] and one or more tables [R, h], plus optionally each table's bias [h],
/// which then starts the sum (one pass over the output instead of a separate add and its autograd node).
/// <see cref="MemoryGather"/> decides when it runs; anything else (CUDA, other dtypes) is refused here.
/// </summary>
/// <remarks>
/// <para>The forward runs managed SIMD kernels: for a batch that hits each table row about four times or more, on
/// tables each at least <see cref="KernelSettings.TiledForwardMinTableBytes"/> large (or several tables that large together,
/// <see cref="KernelSettings.TiledSharedForward"/>), <see cref="TiledGather"/> (16-column tiles of the table served from L2, threads owning output tiles); otherwise
/// <see cref="RowKernels"/>, parallel over tokens, asking for the rows a few hits ahead into L2 (<see cref="KernelSettings.PrefetchGatherRows"/>). Both give the same values (see <see cref="TiledGather"/>). With
/// <see cref="KernelSettings.Bf16ForwardTables"/> a forward that a backward can follow reads each table's bf16 copy instead
/// (<see cref="Bf16TableCopy"/>): <see cref="Bf16TiledGather"/> (32-column bf16 tiles) or <see cref="EncoderKernels.BagSumBf16"/>.</para>
/// <para>Backward, following the official code's <c>WeightedVectorGatherAdd.backward</c>
/// (<c>memory_module/gather/cuda/kernel.py</c>): <c>∂L/∂w[n, k] = Σ_tables ⟨∂L/∂y[n], table[row[n, k]]⟩</c> and
/// <c>∂L/∂table[r] = Σ_{(n, k): row[n, k] = r} w[n, k] · ∂L/∂y[n]</c>. Both come from one pass over table rows
/// (<see cref="TableGradientPass"/>): the (n, k) hits are counting-sorted by row once (shared by all tables), then every
/// table row is written exactly once, and each hit's inner product with the row is added to the weight gradient while
/// its gradient row is loaded. Every sum has a fixed order, so the result does not depend on the thread count. The rows
/// receive no gradient. A table that needs no gradient (frozen) has its inner products taken token by token instead.</para>
/// <para>Where the table gradient goes: with no <see cref="TableGradient"/> for a table (a standalone
/// <see cref="MemoryLayer"/>), a fresh tensor returned to autograd, which accumulates it into <c>grad</c>, runs hooks
/// and serves <c>autograd.grad</c> like any op. With one (a layer whose training loop attached it), the backward writes
/// the layer's reused buffer and sets it as the parameter's <c>grad</c> itself; when the batch touches at most a quarter
/// of the rows, only those rows are written (<see cref="TableGradient.NonZeroRows"/>).</para>
/// <para>Several tables read with the same rows and weights (Q, K and V share one hash) go through
/// <see cref="ApplyMany"/> in one node: the rows are validated and sorted once, and the weight gradient sums all tables'
/// inner products in one pass.</para>
/// </remarks>
internal static partial class FusedMemoryGather
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
    /// table's <c>grad</c> itself (see <see cref="TableGradient"/>; only for a training loop that attached it); null
    /// entries, or no list, hand autograd a fresh tensor.</param>
    /// <param name="biases">Optional, one [h_t] bias per table, added to its output (and differentiated) in the same
    /// node; null adds none.</param>
    /// <param name="copies">Optional, one per table: its layer's bf16 copy (<see cref="Bf16TableCopy"/>), read by a forward that
    /// a backward can follow while <see cref="KernelSettings.Bf16ForwardTables"/> is on, and kept current by an update fused
    /// into the backward.</param>
    /// <param name="tileCopies">Optional, one per table: its layer's kept tile-major copy (<see cref="TileMajorTableCopy"/>), which the
    /// tiled forward reads instead of copying the table while <see cref="KernelSettings.TileMajorCopyFromUpdate"/> is on, and which an
    /// update fused into the backward keeps current (or marks stale).</param>
    /// <param name="rows32">Optional: <paramref name="rows"/> as int32, written by the fused hash (<see cref="HashCodes.Rows32"/>); the forward
    /// takes it instead of copying the rows when it fits the tables (<see cref="PooledRows.Take"/>).</param>
    public static Tensor[] ApplyMany(Tensor rows, Tensor weights, IReadOnlyList<Tensor> tables,
        IReadOnlyList<TableGradient?>? gradients = null, IReadOnlyList<Tensor>? biases = null, IReadOnlyList<Bf16TableCopy>? copies = null,
        IReadOnlyList<TileMajorTableCopy>? tileCopies = null, PooledRows? rows32 = null)
    {
        ArgumentNullException.ThrowIfNull(tables);
        if (tables.Count == 0)
            throw new ArgumentException("At least one table is needed.", nameof(tables));
        Validate(rows, weights, tables, biases);

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
        args[^1] = new GradientSinks(tables.ToArray(), gradients?.ToArray() ?? new TableGradient?[tableCount], backwardPossible, biasCount > 0,
            copies?.ToArray() ?? new Bf16TableCopy?[tableCount], tileCopies?.ToArray() ?? new TileMajorTableCopy?[tableCount], rows32);
        return GatherFunction.apply(args).ToArray();
    }

    private static void Validate(Tensor rows, Tensor weights, IReadOnlyList<Tensor> tables, IReadOnlyList<Tensor>? biases)
    {
        if (rows.device_type != DeviceType.CPU || !IsSupported(weights) || !tables.All(IsSupported) || (biases is not null && !biases.All(IsSupported)))
            throw new ArgumentException($"The fused gather runs on CPU float32 tensors only; got weights {weights.dtype} on {weights.device_type}, " +
                $"tables {string.Join(", ", tables.Select(t => $"{t.dtype} on {t.device_type}"))}. MemoryGather takes EmbeddingBag for the others.", nameof(tables));
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

    /// <summary>
    /// The paired bf16 copy of one table's ∂L/∂y [N, h] that its row pass reads (<see cref="KernelSettings.Bf16GradientRows"/>,
    /// <see cref="Bf16GradientRows"/>): N × h/2 32-bit lanes in a pooled array, or null where the switch is off or the width
    /// does not fit. The caller disposes it after the pass, so the next table's copy takes the same array.
    /// </summary>
    private static unsafe Bf16GradientRows.Copy? Bf16Rows(Tensor grad, int n, int h) =>
        KernelSettings.Current.Bf16GradientRows && Bf16GradientRows.Supports(h) ? Bf16GradientRows.Make(TensorMemory.Floats(grad), n, h) : null;

    private static unsafe nint Address(Bf16GradientRows.Copy? copy) => copy is null ? 0 : (nint)copy.Pointer;

    /// <summary>
    /// Whether the forward takes <see cref="TiledGather"/>: switched on, enough hits a row (<see cref="TiledGather.Pays"/>) and
    /// tables large enough that the token-major kernel would stream them: each at least <see cref="KernelSettings.TiledForwardMinTableBytes"/>,
    /// or, with <see cref="KernelSettings.TiledSharedForward"/>, several tables read with the same rows (the shared Q/K/V) that hold as
    /// much together and whose widths are multiples of 8 (where both kernels give the same bits). Where every width is a multiple of 8,
    /// the machine-sized <see cref="KernelSettings.TiledForwardAlignedMinTableBytes"/> suffices too (the same bits either way).
    /// </summary>
    internal static bool TakesTiledForward(int n, int k, long rowLimit, int[] widths, long[] tableBytes, KernelSettings settings)
    {
        if (!settings.TiledForward || !widths.All(h => TiledGather.Pays(n, k, rowLimit, h)))
            return false;
        bool aligned = widths.All(h => h % 8 == 0);
        bool shared = settings.TiledSharedForward && tableBytes.Length > 1 && aligned;
        long bytes = shared ? tableBytes.Sum() : tableBytes.Min();
        return bytes >= settings.TiledForwardMinTableBytes || (aligned && bytes >= settings.TiledForwardAlignedMinTableBytes);
    }

    /// <summary>The bf16 copy each table's forward reads (<see cref="KernelSettings.Bf16ForwardTables"/>, or the copy's own
    /// <see cref="Bf16TableCopy.Requested"/>), made current, or 0 where it reads fp32: neither set, no backward to follow, no copy, a table that is not the parameter's own contiguous storage.</summary>
    private static nint[] ForwardCopies(GradientSinks sinks, Tensor[] tables, Tensor[] contiguous)
    {
        var result = new nint[tables.Length];
        if (!sinks.BackwardPossible)
            return result;
        bool all = KernelSettings.Current.Bf16ForwardTables;
        for (int t = 0; t < tables.Length; t++)
            result[t] = sinks.Copies[t] is { } copy && (all || copy.Requested) && tables[t].is_contiguous() ? copy.Sync(contiguous[t]) : 0;
        return result;
    }

    /// <summary>
    /// The kept tile-major copy each table's tiled forward reads (<see cref="KernelSettings.TileMajorCopyFromUpdate"/>), made current, or 0
    /// where the forward copies the table itself: switched off, no copy, a table read through its bf16 copy, one that is not the parameter's
    /// own contiguous storage or has more rows than the call reads; a forward no backward follows only reads a copy already current.
    /// </summary>
    private static unsafe nint[] KeptTileCopies(GradientSinks sinks, Tensor[] tables, Tensor[] contiguous, long rowLimit, nint[] table16)
    {
        var result = new nint[tables.Length];
        if (!KernelSettings.Current.TileMajorCopyFromUpdate)
            return result;
        for (int t = 0; t < tables.Length; t++)
        {
            if (sinks.TileCopies[t] is not { } copy || table16[t] != 0 || !tables[t].is_contiguous() || tables[t].shape[0] != rowLimit)
                continue;
            result[t] = sinks.BackwardPossible ? copy.Sync(contiguous[t]) : copy.IsCurrent(contiguous[t]) ? (nint)copy.Pointer : 0;
        }
        return result;
    }

    /// <summary>
    /// Which values of each table the tiled forward's pooled buffer would hold once filled from it (<see cref="TileMajorBuffer.Key"/>), or
    /// null where that cannot be known (no version counter, no layer to own it, a table read through its bf16 copy, not the parameter's
    /// own contiguous storage, or with more rows than the call reads). Computed with <see cref="KernelSettings.ReuseTileMajorBuffer"/> off
    /// too, so that turning it on finds the buffer's contents known.
    /// </summary>
    private static unsafe TileMajorBuffer.Key?[]? BufferKeys(GradientSinks sinks, Tensor[] tables, Tensor[] contiguous, long rowLimit, nint[] table16)
    {
        if (!TableVersion.IsAvailable)
            return null;
        var keys = new TileMajorBuffer.Key?[tables.Length];
        for (int t = 0; t < tables.Length; t++)
        {
            if (sinks.TileCopies[t] is not { } owner || table16[t] != 0 || !tables[t].is_contiguous() || tables[t].shape[0] != rowLimit)
                continue;
            keys[t] = new TileMajorBuffer.Key(owner.Id, (nint)TensorMemory.Address(contiguous[t]), tables[t].shape[0], (int)tables[t].shape[1],
                TableVersion.Of(contiguous[t]), TileMajorBuffer.RawWrites);
        }
        return keys;
    }

    /// <summary>
    /// The kept tile-major copy the fused update of table <paramref name="t"/> writes its rows into: the copy when it is current and
    /// <see cref="KernelSettings.TileMajorCopyFromUpdate"/> is on; otherwise 0, and a copy that was current is marked stale, since the
    /// update writes the table without bumping its version.
    /// </summary>
    private static unsafe nint TileCopyToWrite(GradientSinks sinks, int t, Tensor table)
    {
        if (sinks.TileCopies[t] is not { } copy || !copy.IsCurrent(table))
            return 0;
        if (KernelSettings.Current.TileMajorCopyFromUpdate)
            return (nint)copy.Pointer;
        copy.Invalidate();
        return 0;
    }

    /// <summary>Table <paramref name="t"/>'s bf16 copy if it holds the table's current values, else 0.</summary>
    private static unsafe nint CurrentCopy(GradientSinks sinks, int t, Tensor table) =>
        sinks.Copies[t] is { } copy && copy.IsCurrent(table) ? (nint)copy.Pointer : 0;

    /// <summary>A backward touching at most 1/this of a table's rows writes only those rows of a reused buffer.</summary>
    private const int SparseFraction = 4;

    /// <summary>Whether <paramref name="update"/> can be applied in place: not yet applied, fp32 (or bf16, <see cref="TableUpdate.Bf16"/>)
    /// contiguous CPU moments shaped like the parameter, and the backward's table is the parameter's own storage.</summary>
    private static unsafe bool CanFuse(TableUpdate update, Tensor parameter, Tensor table) =>
        KernelSettings.Current.FusedTableUpdate && !update.Applied
        && IsMoment(update.ExpAvg) && IsMoment(update.ExpAvgSq) && update.ExpAvg.dtype == update.ExpAvgSq.dtype
        && update.ExpAvg.is_contiguous() && update.ExpAvgSq.is_contiguous()
        && update.ExpAvg.shape.SequenceEqual(parameter.shape) && update.ExpAvgSq.shape.SequenceEqual(parameter.shape)
        && parameter.is_contiguous() && TensorMemory.Address(parameter) == TensorMemory.Address(table);

    private static bool IsMoment(Tensor moment) =>
        TensorMemory.IsCpuFloat32(moment) || (moment.device_type == DeviceType.CPU && moment.dtype == ScalarType.BFloat16);

    /// <summary>
    /// Whether a table's gradient is written by <see cref="BlockedTableGradient"/>: switched on, AVX-512, a Memory Layer's
    /// chunked rows over exactly K blocks of rows, and a batch large enough that it touches more than 1/<see cref="SparseFraction"/>
    /// of them when the gradient goes to a reused buffer (smaller ones write only their touched rows), or any batch for a fresh tensor.
    /// </summary>
    private static bool UsesBlocks(PooledRows rows, int n, int k, int rowCount, bool useSink)
    {
        if (!KernelSettings.Current.BlockedTableGradient || !BlockedTableGradient.IsAccelerated || !rows.Chunked || k == 0 || rowCount % k != 0)
            return false;
        // Each chunk's N hits touch at most N of its rowCount / K rows.
        return !useSink || !KernelSettings.Current.WriteTouchedRowsOnly || (long)n * SparseFraction > rowCount / k;
    }

    /// <summary>The tables as passed in (their <c>grad</c> is set in the backward), their optional gradient buffers, and
    /// whether a backward can follow (grad mode on and something requires grad when the node was applied), the tables' bf16 and tile-major copies,
    /// and the hash's int32 rows if it wrote them.</summary>
    private sealed record GradientSinks(Tensor[] Tables, TableGradient?[] Gradients, bool BackwardPossible, bool HasBias, Bf16TableCopy?[] Copies,
        TileMajorTableCopy?[] TileCopies, PooledRows? Rows32 = null);
}
