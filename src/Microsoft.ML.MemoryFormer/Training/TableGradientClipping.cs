namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Which gradient-norm clip factor the Memory Layer tables' update uses (<see cref="TrainingOptions.TableGradientClipping"/>).
/// The global norm is measured over every gradient in every mode, and dense parameters are always clipped by this step's
/// global factor; only the tables' factor differs.
/// </summary>
public enum TableGradientClipping
{
    /// <summary>This step's global-norm factor, as <c>clip_grad_norm_</c> over all parameters (the default). The tables
    /// can only be updated after the whole backward has measured the norm.</summary>
    Global,

    /// <summary>
    /// The global-norm factor of the previous step (1 at the first step). Known before the backward, so with the fused
    /// CPU kernels each table block is updated by AdamW inside the backward while its gradient is in cache, and no table
    /// gradient is written or read again. The clip lags one step behind a sudden gradient spike.
    /// </summary>
    PreviousStep,

    /// <summary>The tables are not clipped (dense parameters still are); fused like <see cref="PreviousStep"/>.</summary>
    None,
}
