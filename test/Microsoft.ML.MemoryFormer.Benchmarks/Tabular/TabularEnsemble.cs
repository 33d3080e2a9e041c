using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>
/// <c>tabular --seed-spread K</c>: trains K single MemoryFormer models that differ only in their seed (Seed, Seed + 1, …) and
/// reports each model's test metric, their mean and spread, and the metric of their averaged prediction (regression:
/// the mean value; binary: the mean probability) — a deep ensemble (Lakshminarayanan et al. 2017), the variance
/// reduction FT-Transformer's authors also report for small tables. Regression and binary sets only. The trainer's own ensemble is
/// <c>--ensemble K</c> (MemoryFormerTabularOptions.EnsembleSize). Plain Console output (no
/// wrapping), so the summary line can be grepped.
/// </summary>
internal static class TabularEnsemble
{
    public static string Measure(TabularDataset set, MemoryFormerTabularOptions options, int size, Action<string>? log)
    {
        if (set.Task == TabularTask.Multiclass) return $"{set.Name}: ensembles are measured on regression and binary sets only.";
        var ml = new MLContext(seed: 0);
        bool regression = set.Task == TabularTask.Regression;
        int first = options.Seed ?? 0;
        float[] labels = [];
        var predictions = new List<float[]>();
        for (int i = 0; i < size; i++)
        {
            var contender = TabularContender.All(With(options, first + i), log)[0];
            var model = set.Featurize.Append(contender.Trainer(ml, set.Task)).Fit(set.Train);
            var scored = model.Transform(set.Test);
            labels = regression ? scored.GetColumn<float>("Label").ToArray()
                : scored.GetColumn<bool>("Label").Select(l => l ? 1f : 0f).ToArray();
            predictions.Add(scored.GetColumn<float>(regression ? "Score" : "Probability").ToArray());
            (model as IDisposable)?.Dispose();
            Console.WriteLine($"  seed {first + i}: {Metrics(predictions[^1], labels, regression)}");
        }
        var mean = Enumerable.Range(0, labels.Length).Select(r => predictions.Average(p => p[r])).Select(v => (float)v).ToArray();
        var singles = predictions.Select(p => Metric(p, labels, regression)).ToArray();
        double average = singles.Average(), spread = Math.Sqrt(singles.Average(s => (s - average) * (s - average)));
        return string.Create(CultureInfo.InvariantCulture,
            $"{set.Name}: {size} seeds from {first}, single models {(regression ? "RMSE" : "accuracy")} {average:F4} ± {spread:F4} " +
            $"(min {singles.Min():F4}, max {singles.Max():F4}); ensemble of {size}: {Metrics(mean, labels, regression)}");
    }

    private static MemoryFormerTabularOptions With(MemoryFormerTabularOptions o, int seed) => new()
    {
        Architecture = o.Architecture, BatchSize = o.BatchSize, Epochs = o.Epochs, LearningRate = o.LearningRate,
        TableLearningRate = o.TableLearningRate, WeightDecay = o.WeightDecay, ValidationFraction = o.ValidationFraction, EarlyStoppingPatience = o.EarlyStoppingPatience,
        Seed = seed, NumericEmbedding = o.NumericEmbedding, PeriodicFrequencies = o.PeriodicFrequencies,
        PeriodicScale = o.PeriodicScale, SizeAwareDefaults = o.SizeAwareDefaults,
        PiecewiseLinearBins = o.PiecewiseLinearBins, PiecewiseLinearBinning = o.PiecewiseLinearBinning, EnsembleSize = 1,
        GroupOneHotSlots = o.GroupOneHotSlots, LabelSmoothing = o.LabelSmoothing,
    };

    private static double Metric(float[] predictions, float[] labels, bool regression) => regression
        ? Math.Sqrt(predictions.Zip(labels).Average(p => (double)(p.First - p.Second) * (p.First - p.Second)))
        : predictions.Zip(labels).Average(p => (p.First > 0.5f ? 1f : 0f) == p.Second ? 1.0 : 0.0);

    private static string Metrics(float[] predictions, float[] labels, bool regression) => regression
        ? string.Create(CultureInfo.InvariantCulture, $"RMSE {Metric(predictions, labels, regression):F4}")
        : string.Create(CultureInfo.InvariantCulture, $"accuracy {Metric(predictions, labels, regression):F4}, AUC {Auc(predictions, labels):F4}");

    /// <summary>Area under the ROC curve: the probability that a random positive outranks a random negative (ties count ½).</summary>
    private static double Auc(float[] predictions, float[] labels)
    {
        var order = Enumerable.Range(0, predictions.Length).OrderBy(i => predictions[i]).ToArray();
        double rankSum = 0;
        for (int start = 0; start < order.Length;)
        {
            int end = start;
            while (end < order.Length && predictions[order[end]] == predictions[order[start]]) end++;
            double rank = (start + end + 1) / 2.0;                       // mean 1-based rank of the tie group
            for (int i = start; i < end; i++) if (labels[order[i]] == 1) rankSum += rank;
            start = end;
        }
        double positives = labels.Count(l => l == 1), negatives = labels.Length - positives;
        return (rankSum - positives * (positives + 1) / 2) / (positives * negatives);
    }
}
