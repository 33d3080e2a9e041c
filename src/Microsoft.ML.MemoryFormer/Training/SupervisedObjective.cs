using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>What a supervised task minimises and how its validation metric is computed (higher is better).</summary>
internal abstract class SupervisedObjective
{
    /// <summary>The metric's name for logs, e.g. "accuracy".</summary>
    public abstract string MetricName { get; }

    /// <summary>Training loss of a batch: a scalar with grad.</summary>
    public abstract Tensor Loss(Tensor outputs, Tensor targets);

    /// <summary>Validation sums of a batch: summed per-row loss and the summed quantity behind the metric.</summary>
    public abstract (double LossSum, double MetricSum) Sums(Tensor outputs, Tensor targets);

    /// <summary>The metric over a whole validation set from its <see cref="Sums"/>.</summary>
    public abstract double Metric(double metricSum, long count);
}
