using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>Mean squared error on a single output; the validation metric is −RMSE (so that higher is better).</summary>
internal sealed class RegressionObjective : SupervisedObjective
{
    public override string MetricName => "-RMSE";

    public override Tensor Loss(Tensor outputs, Tensor targets, Tensor? weights = null) => weights is null
        ? F.mse_loss(outputs.squeeze(-1), targets)                                                              // scalar
        : WeightedMean(F.mse_loss(outputs.squeeze(-1), targets, nn.Reduction.None), weights);                   // scalar

    protected override (double LossSum, double MetricSum) UnweightedSums(Tensor outputs, Tensor targets)
    {
        double squared = F.mse_loss(outputs.squeeze(-1), targets, nn.Reduction.Sum).item<float>();
        return (squared, squared);
    }

    protected override (Tensor Loss, Tensor Metric) RowValues(Tensor outputs, Tensor targets)
    {
        var squared = F.mse_loss(outputs.squeeze(-1), targets, nn.Reduction.None);                             // [B]
        return (squared, squared);
    }

    public override double Metric(double metricSum, double count) => -Math.Sqrt(metricSum / count);
}
