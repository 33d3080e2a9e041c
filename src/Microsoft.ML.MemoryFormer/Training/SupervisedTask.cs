using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Supervised learning (classification or regression) for the one <see cref="TrainingLoop"/>: step s trains on batch
/// s mod E of epoch s / E (E = <see cref="StepsPerEpoch"/>) in a seeded shuffle; validation covers the whole
/// validation set in order.
/// </summary>
internal sealed class SupervisedTask : ITrainingTask
{
    private readonly SupervisedObjective objective;
    private readonly ILabelledRows train;
    private readonly ILabelledRows? validation;
    private readonly ShuffledBatchSampler sampler;
    private readonly int batchSize;
    private int currentEpoch = -1;
    private int[][] epochBatches = [];

    public SupervisedTask(SupervisedObjective objective, ILabelledRows train, ILabelledRows? validation, int batchSize, int seed)
    {
        if (train.Count == 0) throw new ArgumentException("There are no training rows.", nameof(train));
        this.objective = objective;
        this.train = train;
        this.validation = validation is { Count: > 0 } ? validation : null;
        this.batchSize = batchSize;
        sampler = new ShuffledBatchSampler(train.Count, batchSize, seed, dropLast: false);
    }

    /// <summary>Optimizer steps in one pass over the training rows.</summary>
    public int StepsPerEpoch => sampler.BatchesPerEpoch;

    public (TorchSharp.torch.Tensor Loss, long Items) Loss(int step)
    {
        int epoch = step / StepsPerEpoch;
        if (epoch != currentEpoch)
        {
            epochBatches = sampler.Epoch(epoch).ToArray();
            currentEpoch = epoch;
        }
        var rows = epochBatches[step % StepsPerEpoch];
        var (outputs, targets) = train.Run(rows);
        return (objective.Loss(outputs, targets, train.Weights(rows)), rows.Length);
    }

    public (double Loss, double? Metric)? Validate()
    {
        if (validation is null) return null;
        double lossSum = 0, metricSum = 0;
        for (int start = 0; start < validation.Count; start += batchSize)
        {
            var rows = Enumerable.Range(start, Math.Min(batchSize, validation.Count - start)).ToArray();
            using var scope = TorchSharp.torch.NewDisposeScope();
            var (outputs, targets) = validation.Run(rows);
            var (loss, metric) = objective.Sums(outputs, targets);
            lossSum += loss;
            metricSum += metric;
        }
        return (lossSum / validation.Count, objective.Metric(metricSum, validation.Count));
    }
}
