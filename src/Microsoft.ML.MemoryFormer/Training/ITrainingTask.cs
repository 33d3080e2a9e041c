using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>What the one training loop needs from a task: a loss per step and, optionally, a validation pass.</summary>
internal interface ITrainingTask
{
    /// <summary>Loss on the batch of step <paramref name="step"/> (scalar tensor with grad) and the items it covers.</summary>
    (Tensor Loss, long Items) Loss(int step);

    /// <summary>Whether <see cref="PartLoss"/> can split a step's batch (<see cref="TrainingOptions.DataParallelStreams"/>), and
    /// why not when it cannot (null: it can).</summary>
    string? CannotSplit => "this task does not split its batches";

    /// <summary>Loss on part <paramref name="part"/> of <paramref name="parts"/> equal parts of the batch of step
    /// <paramref name="step"/>, scaled by the part's share of the batch (so the parts' losses add up to the whole batch's), and the
    /// items it covers.</summary>
    (Tensor Loss, long Items) PartLoss(int step, int part, int parts) => throw new NotSupportedException(CannotSplit);

    /// <summary>Validation over the whole validation set: loss and an optional higher-is-better metric; null if none.</summary>
    (double Loss, double? Metric)? Validate();
}
