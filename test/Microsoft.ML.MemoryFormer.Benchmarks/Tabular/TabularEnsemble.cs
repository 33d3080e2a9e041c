using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>
/// <c>tabular --seed-spread K</c>: trains K single MemoryFormer models that differ only in their seed (Seed, Seed + 1, …) and
/// reports each model's test metric and train time, the metric of the ensemble of the models so far (each model's test predictions go to the output folder), their mean and spread, and the metric of their averaged prediction (regression:
/// the mean value; binary: the mean probability) — a deep ensemble (Lakshminarayanan et al. 2017), the variance
/// reduction FT-Transformer's authors also report for small tables. Regression and binary sets only. The trainer's own ensemble is
/// <c>--ensemble K</c> (MemoryFormerTabularOptions.EnsembleSize). Plain Console output (no
/// wrapping), so the summary line can be grepped.
/// </summary>
internal static class TabularEnsemble
{
    public static string Measure(TabularDataset set, MemoryFormerTabularOptions options, int size, Action<string>? log, string? output = null)
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
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var model = set.Featurize.Append(contender.Trainer(ml, set.Task)).Fit(set.Train);
            double trainSeconds = clock.Elapsed.TotalSeconds;
            var scored = model.Transform(set.Test);
            labels = regression ? scored.GetColumn<float>("Label").ToArray()
                : scored.GetColumn<bool>("Label").Select(l => l ? 1f : 0f).ToArray();
            predictions.Add(scored.GetColumn<float>(regression ? "Score" : "Probability").ToArray());
            (model as IDisposable)?.Dispose();
            if (output is not null) Save(output, $"{set.Name}-seed{first + i}", predictions[^1], labels);
            string running = i == 0 ? "" : $"; ensemble of seeds {first}–{first + i}: {Metrics(Mean(predictions), labels, regression)}";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  seed {first + i}: {Metrics(predictions[^1], labels, regression)}, train {trainSeconds:F0} s{running}"));
        }
        var mean = Mean(predictions);
        var singles = predictions.Select(p => Metric(p, labels, regression)).ToArray();
        double average = singles.Average(), spread = Math.Sqrt(singles.Average(s => (s - average) * (s - average)));
        return string.Create(CultureInfo.InvariantCulture,
            $"{set.Name}: {size} seeds from {first}, single models {(regression ? "RMSE" : "accuracy")} {average:F4} ± {spread:F4} " +
            $"(min {singles.Min():F4}, max {singles.Max():F4}); ensemble of {size}: {Metrics(mean, labels, regression)}");
    }

    /// <summary>Writes one member's test predictions as "label prediction" lines (output/name.txt), so that members of
    /// several runs can be averaged afterwards.</summary>
    private static void Save(string output, string name, float[] predictions, float[] labels)
    {
        Directory.CreateDirectory(output);
        File.WriteAllLines(Path.Combine(output, name + ".txt"),
            predictions.Zip(labels).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Second:R} {p.First:R}")));
    }

    /// <summary>The averaged prediction of the members so far: [rows] mean over the members' [rows] predictions.</summary>
    private static float[] Mean(List<float[]> predictions) =>
        Enumerable.Range(0, predictions[0].Length).Select(r => (float)predictions.Average(p => p[r])).ToArray();

    // Member i is the single model of seed first + i: every option copied, one member (MemoryFormerTabularOptions.ForMember).
    private static MemoryFormerTabularOptions With(MemoryFormerTabularOptions o, int seed) => o.ForMember(0, seed);

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
