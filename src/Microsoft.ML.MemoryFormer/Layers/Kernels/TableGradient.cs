using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// A Memory Layer's reusable table-gradient buffer and the squared norm the backward measured while writing it. Used
/// only while a training loop has <see cref="Attached"/> it (<c>Training/ModelOptimizer.cs</c> does, for the run);
/// a detached layer hands its table gradient to autograd like any op.
/// </summary>
/// <remarks>
/// <para>Allocating a fresh [K·2^τ, h] gradient every step costs page faults and kernel zeroing over the whole table
/// (tens of MB), a fixed cost that dominated small batches. The fused gather's backward therefore writes every row
/// of this buffer once (zeros for untouched rows) and sets it as the parameter's <c>grad</c> itself, instead of
/// handing autograd a new tensor. A parameter whose <c>grad</c> is already defined (gradient accumulation) gets the
/// step's gradient added in place, as autograd would. The buffer is overwritten by the next backward after the
/// gradient was cleared, so clone <c>grad</c> to keep it across steps.</para>
/// <para>Small batches touch few rows (N·K of K·2^τ), yet writing the whole buffer costs a table-sized pass (33 MB per
/// layer at d = 512). So the buffer remembers which rows it may hold non-zeros in (<see cref="NonZeroRows"/>): a
/// backward that touches few rows zeroes only those and writes only its own, and the buffer equals the gradient
/// everywhere. This needs the buffer's other rows to stay zero between backwards: code may scale or zero the gradient
/// (clipping, <c>zero_()</c>) but must not write non-zeros into rows the backward left at zero.</para>
/// <para>The squared norm lets the optimizer clip without another pass over the table gradients
/// (<see cref="TryTakeSquaredNorm"/>); it is valid only while the parameter's gradient is still this buffer.</para>
/// </remarks>
internal sealed class TableGradient : IDisposable
{
    private Tensor? buffer;
    private double? squaredNorm;
    private readonly Tensor?[] streamBuffers = new Tensor?[GradientStream.MaxStreams];

    /// <summary>
    /// Whether the fused backward writes this buffer and sets it as the table's <c>grad</c> itself, bypassing autograd
    /// (no hooks, nothing for <c>autograd.grad</c> or <c>backward(inputs:)</c>, the buffer reused next step). False
    /// by default; set by the optimizer that owns the training step, which knows the gradient is consumed in that step.
    /// </summary>
    public bool Attached { get; set; }

    /// <summary>
    /// Rows of the buffer that may be non-zero, all others being zero; null when unknown (a fresh buffer, or after a
    /// dense write or an accumulation), which makes the next sparse write zero the whole buffer first.
    /// </summary>
    public int[]? NonZeroRows { get; set; }

    /// <summary>
    /// An optimizer step to apply inside the next backward instead of writing the gradient (<see cref="TableUpdate"/>);
    /// null (the default) writes the gradient. Armed and cleared by the optimizer around one training step.
    /// </summary>
    public TableUpdate? Update { get; set; }

    /// <summary>The buffer, shaped like <paramref name="table"/>, allocated on first use (contents undefined).</summary>
    public Tensor Rent(Tensor table)
    {
        if (buffer is null || !buffer.shape.SequenceEqual(table.shape))
        {
            buffer?.Dispose();
            buffer = empty(table.shape, ScalarType.Float32).DetachFromDisposeScope();
            NonZeroRows = null;
        }
        squaredNorm = null;
        return buffer;
    }

    /// <summary>The table's index among the model's tables (its owner stream under <see cref="GradientStream.OwnerUpdates"/> is its parity).</summary>
    public int Index { get; set; }

    private int partsReady;
    private readonly object partGate = new();

    /// <summary>Forgets the previous step's parts (the optimizer, before a step's backwards).</summary>
    public void ResetParts() => Volatile.Write(ref partsReady, 0);

    /// <summary>Marks stream <paramref name="stream"/>'s part of this step as written.</summary>
    public void PartReady(int stream)
    {
        lock (partGate)
        {
            partsReady |= 1 << stream;
            Monitor.PulseAll(partGate);
        }
    }

    /// <summary>Waits until stream <paramref name="stream"/>'s part of this step is written (throws after 120 s: a failed stream).</summary>
    public void WaitPart(int stream)
    {
        lock (partGate)
        {
            while ((partsReady & (1 << stream)) == 0)
                if (!Monitor.Wait(partGate, TimeSpan.FromSeconds(120)))
                    throw new TimeoutException($"Stream {stream} did not write its part of table {Index}.");
        }
    }

    /// <summary>Stream <paramref name="stream"/>'s buffer of a data-parallel step (<see cref="GradientStream"/>), shaped like
    /// <paramref name="table"/>, allocated on first use (contents undefined; the stream's backward writes every row).</summary>
    public Tensor RentStream(int stream, Tensor table)
    {
        if (streamBuffers[stream] is not { } part || !part.shape.SequenceEqual(table.shape))
        {
            streamBuffers[stream]?.Dispose();
            streamBuffers[stream] = part = empty(table.shape, ScalarType.Float32).DetachFromDisposeScope();
        }
        return part;
    }

    /// <summary>
    /// After the backwards of <paramref name="streams"/> streams, the table's gradient as Σ of their buffers in stream order
    /// (<see cref="StreamGradientSum"/>): with <paramref name="update"/> (armed and fusable), its AdamW step applied row by row
    /// and marked <see cref="TableUpdate.Applied"/>, no gradient set; otherwise the sum written into this sink's buffer and set as
    /// the table's <c>grad</c>, its norm recorded, as the single-stream backward leaves it.
    /// </summary>
    public unsafe void CombineStreams(Tensor table, int streams, TableUpdate? update)
    {
        var parts = new nint[streams];
        for (int s = 0; s < streams; s++)
            parts[s] = streamBuffers[s] is { } part && part.shape.SequenceEqual(table.shape)
                ? (nint)TensorMemory.Floats(part)
                : throw new InvalidOperationException($"Stream {s} wrote no gradient for a table of shape [{string.Join(", ", table.shape)}].");
        int rowCount = (int)table.shape[0], h = (int)table.shape[1];
        if (update is not null)
        {
            update.SquaredNorm = StreamGradientSum.UpdateAll(parts, (nint)TensorMemory.Floats(table), rowCount, h, update.Kernel());
            update.Applied = true;
            TableVersion.Bump(table);                                    // a raw write: any copy keyed on the version is stale
            return;
        }
        var sum = Rent(table);
        double squares = StreamGradientSum.WriteAll(parts, (nint)TensorMemory.Floats(sum), rowCount, h);
        NonZeroRows = null;
        table.grad = sum;
        Record(squares);
    }

    /// <summary>Records ‖grad‖² of the table's gradient as just written by the backward.</summary>
    public void Record(double value) => squaredNorm = value;

    /// <summary>
    /// <see cref="NonZeroRows"/> when <paramref name="table"/>'s gradient is this buffer (so every other row of it is
    /// zero), else null: lets a lazy optimizer visit only those rows.
    /// </summary>
    public unsafe int[]? NonZeroRowsOf(Tensor table)
    {
        if (NonZeroRows is null || buffer is null || table.grad is not { } g || g.IsInvalid)
            return null;
        using (g)
            return TensorMemory.IsCpuFloat32(g) && TensorMemory.Address(g) == TensorMemory.Address(buffer) ? NonZeroRows : null;
    }

    /// <summary>‖grad‖² of <paramref name="table"/>'s current gradient if the backward measured it; forgets it.</summary>
    public unsafe bool TryTakeSquaredNorm(Tensor table, out double value)
    {
        value = squaredNorm ?? 0;
        bool valid = squaredNorm is not null && buffer is not null && table.grad is { } g && !g.IsInvalid
            && TensorMemory.IsCpuFloat32(g) && g.is_contiguous() && TensorMemory.Address(g) == TensorMemory.Address(buffer);
        squaredNorm = null;
        return valid;
    }

    public void Dispose()
    {
        buffer?.Dispose();
        buffer = null;
        for (int s = 0; s < streamBuffers.Length; s++)
        {
            streamBuffers[s]?.Dispose();
            streamBuffers[s] = null;
        }
        NonZeroRows = null;
    }
}
