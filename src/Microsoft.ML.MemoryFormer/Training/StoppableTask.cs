using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Checks an external stop signal (ML.NET's own cancellation, the internal <c>ICancelable.CancelExecution</c> of an MLContext) before each step's loss, before anything
/// is computed, so a stop leaves the run at its last completed step.
/// </summary>
internal sealed class StoppableTask(ITrainingTask inner, Func<bool> stopRequested) : ITrainingTask
{
    public (Tensor Loss, long Items) Loss(int step) => stopRequested()
        ? throw new OperationCanceledException($"Training was cancelled through ML.NET before step {step + 1}.")
        : inner.Loss(step);

    public (double Loss, double? Metric)? Validate() => inner.Validate();
}
