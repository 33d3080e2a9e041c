using TorchSharp;
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

    /// <summary>Multiplies <paramref name="table"/>'s gradient by <paramref name="factor"/> (the clip), as <c>mul_</c> would: only the
    /// rows that may be non-zero when the gradient is this buffer with known rows (<see cref="NonZeroRowsOf"/>), else all of it.</summary>
    public unsafe void Scale(Tensor table, double factor)
    {
        using var g = table.grad;
        if (g is null || g.IsInvalid)
            return;
        if (NonZeroRowsOf(table) is not { } rows || g.dim() != 2)
        {
            using Scalar f = factor;                                            // kept alive across the native call (LiveScalars)
            g.mul_(f);
            return;
        }
        float* data = TensorMemory.Floats(g);
        int h = (int)g.shape[1];
        float f32 = (float)factor;                                              // torch multiplies a float tensor by the scalar as float
        KernelParallel.For(rows.Length, h, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                float* row = data + ((long)rows[i] * h);
                for (int j = 0; j < h; j++)
                    row[j] *= f32;
            }
        });
    }

    public void Dispose()
    {
        buffer?.Dispose();
        buffer = null;
        NonZeroRows = null;
    }
}
