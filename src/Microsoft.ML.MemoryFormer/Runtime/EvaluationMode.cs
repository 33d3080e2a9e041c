using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// A module in evaluation mode with gradients off for the length of a <c>using</c> block, then as it was before (training
/// mode only if it was on): how the evaluators and the calibration read a model that may be in the middle of training.
/// </summary>
internal readonly struct EvaluationMode : IDisposable
{
    private readonly nn.Module module;
    private readonly bool wasTraining;
    private readonly IDisposable noGrad;

    private EvaluationMode(nn.Module module)
    {
        this.module = module;
        wasTraining = module.training;
        module.eval();
        noGrad = no_grad();
    }

    /// <summary>Switches <paramref name="module"/> to evaluation mode and turns gradients off until disposed.</summary>
    public static EvaluationMode Enter(nn.Module module) => new(module ?? throw new ArgumentNullException(nameof(module)));

    /// <summary>Turns gradients back on and restores training mode if it was on.</summary>
    public void Dispose()
    {
        noGrad.Dispose();
        if (wasTraining) module.train();
    }
}
