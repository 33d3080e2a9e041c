using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>What a supervised task minimises and how its validation metric is computed (higher is better).</summary>
internal abstract class SupervisedObjective
{
    /// <summary>The metric's name for logs, e.g. "accuracy".</summary>
    public abstract string MetricName { get; }

    /// <summary>Training loss of a batch: a scalar with grad. With <paramref name="weights"/> (float [B], ≥ 0) each row's
    /// loss counts in proportion to its weight: Σ wᵢ·lossᵢ / Σ wᵢ, so a row of weight 0 adds nothing and a weight of 2
    /// counts a row twice; a batch whose weights are all 0 gives 0.</summary>
    public abstract Tensor Loss(Tensor outputs, Tensor targets, Tensor? weights = null);

    /// <summary>Σ wᵢ·lossᵢ / Σ (wᵢ·normᵢ) for per-row losses [B]; norm (the class weight of each row's class, as
    /// cross-entropy's mean divides by) defaults to 1.</summary>
    protected static Tensor WeightedMean(Tensor rowLosses, Tensor weights, Tensor? norms = null) =>
        (rowLosses * weights).sum() / (norms is null ? weights.sum() : (weights * norms).sum()).clamp_min(SmallestWeightSum);   // scalar

    /// <summary>The divisor's floor: a batch whose weights are all 0 gives a loss of 0, not NaN (kept alive for native ops).</summary>
    private static readonly Scalar SmallestWeightSum = 1e-12;

    /// <summary>Validation sums of a batch: the per-row loss and the per-row quantity behind the metric, each summed
    /// over the rows, or with <paramref name="weights"/> (float [B], ≥ 0) summed with each row's weight, as ML.NET's
    /// evaluators weigh rows when given a weight column.</summary>
    public (double LossSum, double MetricSum) Sums(Tensor outputs, Tensor targets, Tensor? weights = null)
    {
        if (weights is null) return UnweightedSums(outputs, targets);
        var (loss, metric) = RowValues(outputs, targets);                                   // [B], [B]
        return ((loss * weights).sum().item<float>(), (metric * weights).sum().item<float>());
    }

    /// <summary>The unweighted <see cref="Sums"/>, reduced by the loss's own sum (the bits every
    /// unweighted run had before weights).</summary>
    protected abstract (double LossSum, double MetricSum) UnweightedSums(Tensor outputs, Tensor targets);

    /// <summary>Each row's validation loss and metric quantity, float [B] each.</summary>
    protected abstract (Tensor Loss, Tensor Metric) RowValues(Tensor outputs, Tensor targets);

    /// <summary>The metric over a whole validation set from its <see cref="Sums"/> and its row count (or summed weight).</summary>
    public abstract double Metric(double metricSum, double count);
}
