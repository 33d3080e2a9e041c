using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>What the one training loop needs from a task: a loss per step and, optionally, a validation pass.</summary>
internal interface ITrainingTask
{
    /// <summary>Loss on the batch of step <paramref name="step"/> (scalar tensor with grad) and the items it covers.</summary>
    (Tensor Loss, long Items) Loss(int step);

    /// <summary>Validation over the whole validation set: loss and an optional higher-is-better metric; null if none.</summary>
    (double Loss, double? Metric)? Validate();
}
