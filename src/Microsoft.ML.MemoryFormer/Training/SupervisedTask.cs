using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Supervised learning (classification or regression) for the one <see cref="TrainingLoop"/>: step s trains on batch
/// s mod E of epoch s / E (E = <see cref="StepsPerEpoch"/>) in a seeded shuffle; validation covers the whole
/// validation set in order, each row counted with its example weight when the rows have weights (unless every
/// validation weight is 0: then each row counts once, rather than a metric of nothing).
/// </summary>
internal sealed class SupervisedTask : ITrainingTask
{
    private readonly SupervisedObjective objective;
    private readonly ILabelledRows train;
    private readonly ILabelledRows? validation;
    private readonly bool weightedValidation;
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
        weightedValidation = this.validation is { } rows && HasWeight(rows);
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
        double lossSum = 0, metricSum = 0, count = 0;
        for (int start = 0; start < validation.Count; start += batchSize)
        {
            var rows = Enumerable.Range(start, Math.Min(batchSize, validation.Count - start)).ToArray();
            using var scope = TorchSharp.torch.NewDisposeScope();
            var (outputs, targets) = validation.Run(rows);
            var weights = weightedValidation ? validation.Weights(rows) : null;                  // [B] or null
            var (loss, metric) = objective.Sums(outputs, targets, weights);
            lossSum += loss;
            metricSum += metric;
            count += weights is null ? rows.Length : weights.sum().item<float>();
        }
        return (lossSum / count, objective.Metric(metricSum, count));
    }

    /// <summary>Whether <paramref name="rows"/> carry weights and at least one of them is above 0.</summary>
    private static bool HasWeight(ILabelledRows rows)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        return rows.Weights(Enumerable.Range(0, rows.Count).ToArray()) is { } weights && weights.sum().item<float>() > 0;
    }
}
