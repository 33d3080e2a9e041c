using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Cross-entropy over class logits, optionally weighted per class for imbalanced labels; validation reports the
/// unweighted log-loss and accuracy.
/// </summary>
internal sealed class ClassificationObjective(Tensor? classWeights = null) : SupervisedObjective
{
    public override string MetricName => "accuracy";

    public override Tensor Loss(Tensor outputs, Tensor targets) =>
        F.cross_entropy(outputs, targets, classWeights?.to(outputs.device));    // scalar

    public override (double LossSum, double MetricSum) Sums(Tensor outputs, Tensor targets)
    {
        double loss = F.cross_entropy(outputs, targets, reduction: nn.Reduction.Sum).item<float>();
        double correct = outputs.argmax(1).eq(targets).sum().item<long>();
        return (loss, correct);
    }

    public override double Metric(double metricSum, long count) => metricSum / count;
}
