using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Cross-entropy over class logits, optionally weighted per class for imbalanced labels and with label smoothing
/// (the target puts <paramref name="labelSmoothing"/> of its mass uniformly over all classes, Szegedy et al. 2016);
/// validation reports the plain (unweighted, unsmoothed) log-loss and accuracy. Rows whose target is negative are outliers
/// (<c>OutlierSet</c>): their loss is the cross-entropy to the uniform distribution, −(1/C)·Σ_c log p_c (outlier exposure,
/// Hendrycks et al. 2019), and a batch's loss is the classes' mean loss plus <paramref name="outlierWeight"/> times the
/// outliers' mean loss.
/// </summary>
internal sealed class ClassificationObjective(Tensor? classWeights = null, double labelSmoothing = 0, double outlierWeight = 0.5) : SupervisedObjective
{
    public override string MetricName => "accuracy";

    public override Tensor Loss(Tensor outputs, Tensor targets, Tensor? weights = null)
    {
        using Scalar weight = outlierWeight;                                                     // named: see Runtime/LiveScalars.cs
        var outlier = targets.lt(LiveScalars.ZeroInteger);                                       // [B]
        if (!outlier.any().item<bool>()) return ClassLoss(outputs, targets, weights);
        var inside = outlier.logical_not();
        var uniform = F.log_softmax(outputs.index(outlier), 1).mean([1L]).neg();                // [outliers]
        var outlierLoss = (weights is null ? uniform.mean() : WeightedMean(uniform, weights.index(outlier))).mul(weight);
        if (!inside.any().item<bool>()) return outlierLoss;                                      // a batch of outliers only
        return LiveScalars.Add(ClassLoss(outputs.index(inside), targets.index(inside), weights?.index(inside)), outlierLoss); // scalar
    }

    private Tensor ClassLoss(Tensor outputs, Tensor targets, Tensor? weights)
    {
        var perClass = classWeights?.to(outputs.device);
        if (weights is null) return F.cross_entropy(outputs, targets, perClass, label_smoothing: labelSmoothing);    // scalar
        var rows = F.cross_entropy(outputs, targets, perClass, reduction: nn.Reduction.None, label_smoothing: labelSmoothing); // [B]
        return WeightedMean(rows, weights, perClass?.index_select(0, targets));                                    // scalar
    }

    protected override (double LossSum, double MetricSum) UnweightedSums(Tensor outputs, Tensor targets)
    {
        double loss = F.cross_entropy(outputs, targets, reduction: nn.Reduction.Sum).item<float>();
        double correct = outputs.argmax(1).eq(targets).sum().item<long>();
        return (loss, correct);
    }

    protected override (Tensor Loss, Tensor Metric) RowValues(Tensor outputs, Tensor targets) =>
        (F.cross_entropy(outputs, targets, reduction: nn.Reduction.None), outputs.argmax(1).eq(targets).to(ScalarType.Float32)); // [B], [B]

    public override double Metric(double metricSum, double count) => metricSum / count;
}
