namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Which gradient-norm clip factor the Memory Layer tables' update uses (<see cref="TrainingOptions.TableGradientClipping"/>).
/// The global norm is measured over every gradient in every mode, and dense parameters are always clipped by this step's
/// global factor; only the tables' factor differs.
/// </summary>
/// <remarks>The numbers are stored in checkpoints (<c>run.json</c>) and never change. Leaving the option unset (null)
/// takes <see cref="PreviousStep"/> for a new run and the checkpoint's own rule on resume
/// (<see cref="TrainingOptions.TableGradientClipping"/>).</remarks>
public enum TableGradientClipping
{
    /// <summary>This step's global-norm factor, as <c>clip_grad_norm_</c> over all parameters (the default before
    /// <see cref="PreviousStep"/>; checkpoints written then resume with it). The tables can only be updated after the
    /// whole backward has measured the norm.</summary>
    Global = 0,

    /// <summary>
    /// The global-norm factor of the previous step (1 at the first step). Known before the backward, so with the fused
    /// CPU kernels each table block is updated by AdamW inside the backward while its gradient is in cache, and no table
    /// gradient is written or read again. The clip lags one step behind a sudden gradient spike. The default of a new
    /// run: within 0.01 bits/byte of <see cref="Global"/> on the tinyshakespeare benchmark (docs/benchmarks.md).
    /// Without the fused CPU kernels (CUDA, kernels switched off) the same factor is applied in the separate update.
    /// </summary>
    PreviousStep = 1,

    /// <summary>The tables are not clipped (dense parameters still are); fused like <see cref="PreviousStep"/>.</summary>
    None = 2,
}
