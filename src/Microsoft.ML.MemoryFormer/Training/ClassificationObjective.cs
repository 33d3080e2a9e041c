using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Cross-entropy over class logits, optionally weighted per class for imbalanced labels and with label smoothing
/// (the target puts <paramref name="labelSmoothing"/> of its mass uniformly over all classes, Szegedy et al. 2016);
/// validation reports the plain (unweighted, unsmoothed) log-loss and accuracy.
/// </summary>
internal sealed class ClassificationObjective(Tensor? classWeights = null, double labelSmoothing = 0) : SupervisedObjective
{
    public override string MetricName => "accuracy";

    public override Tensor Loss(Tensor outputs, Tensor targets, Tensor? weights = null)
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
