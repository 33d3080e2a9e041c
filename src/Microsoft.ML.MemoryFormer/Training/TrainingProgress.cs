namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>A progress report from a training run.</summary>
/// <param name="Step">Steps completed.</param>
/// <param name="TotalSteps">Steps planned.</param>
/// <param name="Loss">Training loss of the last step.</param>
/// <param name="LearningRate">Dense learning rate of the last step.</param>
/// <param name="ItemsPerSecond">Tokens (language model) or rows (tasks) per second so far.</param>
/// <param name="Elapsed">Wall time so far.</param>
/// <param name="Remaining">Estimated time to the last step.</param>
/// <param name="ValidationLoss">Loss on the validation set, when this report follows a validation.</param>
/// <param name="ValidationMetric">The task's validation metric (e.g. accuracy), when it has one.</param>
public sealed record TrainingProgress(int Step, int TotalSteps, double Loss, double LearningRate, double ItemsPerSecond,
    TimeSpan Elapsed, TimeSpan Remaining, double? ValidationLoss = null, double? ValidationMetric = null)
{
    /// <summary>Which model of an ensemble this run trains, from 1 (the tabular trainer's EnsembleSize); 1 otherwise.</summary>
    public int EnsembleMember { get; init; } = 1;

    /// <summary>How many models the ensemble trains, one after another; 1 for a single model.</summary>
    public int EnsembleSize { get; init; } = 1;

    /// <summary>Which training run of the Fit this report belongs to, from 1. A text classifier that fits its temperature
    /// and then trains again on every row (the default without a validation set) makes two runs, its step count restarting
    /// with the second; 1 otherwise.</summary>
    public int Run { get; init; } = 1;

    /// <summary>How many training runs the Fit makes one after another (see <see cref="Run"/>); 1 for most.</summary>
    public int Runs { get; init; } = 1;
}
