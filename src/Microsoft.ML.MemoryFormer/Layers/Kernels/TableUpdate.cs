using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// An AdamW step armed on a table's <see cref="TableGradient"/> before the backward (issue 16, item 3): when the fused
/// gather writes that table's gradient block by block (<see cref="BlockedTableGradient"/>), it applies this step to each
/// block while the block's gradient is in cache, instead of writing the gradient for the optimizer to read back.
/// </summary>
/// <remarks>The optimizer (<c>Training/FusedAdamW.cs</c>) arms it with this step's coefficients, the gradient scale
/// included (a clip factor known before the backward), and afterwards counts the step if <see cref="Applied"/>; if the
/// backward could not fuse (small batch, another kernel), the gradient is written as usual and the optimizer takes the
/// same step itself, with the same fp32 arithmetic (<see cref="AdamWKernel"/>).</remarks>
/// <param name="expAvg">The table's first moment, fp32, shaped like the table.</param>
/// <param name="expAvgSq">The second moment.</param>
/// <param name="coefficients">This step's coefficients (learning rate, bias corrections for step t, gradient scale).</param>
/// <param name="salt">The rounding seed of bf16 moments for this step and parameter (<see cref="Bf16Moments.Salt"/>); unused for fp32.</param>
internal sealed class TableUpdate(Tensor expAvg, Tensor expAvgSq, AdamWKernel.Coefficients coefficients, uint salt = 0)
{
    /// <summary>The first moment.</summary>
    public Tensor ExpAvg { get; } = expAvg;

    /// <summary>The second moment.</summary>
    public Tensor ExpAvgSq { get; } = expAvgSq;

    /// <summary>The step's coefficients.</summary>
    public AdamWKernel.Coefficients Coefficients { get; } = coefficients;

    /// <summary>True when the moments are stored as bfloat16 (<c>TrainingOptions.TableMomentPrecision</c>): only the row
    /// pass applies such a step, with <see cref="Bf16Moments"/>, the same bits as the optimizer's own step.</summary>
    public bool Bf16 { get; } = expAvg.dtype == ScalarType.BFloat16;

    /// <summary>The bf16 moments' rounding seed (<see cref="Bf16Moments.Salt"/> of the step and parameter).</summary>
    public uint Salt { get; } = salt;

    /// <summary>The step as the backward's kernels take it (raw pointers to the moments).</summary>
    public unsafe BlockedTableGradient.FusedStep Kernel() =>
        new((nint)TensorMemory.Address(ExpAvg), (nint)TensorMemory.Address(ExpAvgSq), Coefficients, Bf16, Salt);

    /// <summary>Set by the backward once it has updated every row of the table.</summary>
    public bool Applied { get; set; }

    /// <summary>‖∂L/∂table‖² of the gradient the backward applied (unscaled), for the global norm.</summary>
    public double SquaredNorm { get; set; }
}
