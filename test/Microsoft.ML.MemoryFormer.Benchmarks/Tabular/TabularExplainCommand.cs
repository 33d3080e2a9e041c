using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.Trainers.FastTree;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>
/// <c>tabular-explain</c>: do MemoryFormer's per-row explanations (<c>mlContext.Model.ExplainTabular</c>) name the features a
/// tree ensemble's own attributions name? Trains MemoryFormer with the trainer's defaults and FastTree on a set's training
/// split, explains the first test rows with both — by occlusion against the training split's first rows (MemoryFormer's
/// <c>ExplainTabular</c>, and the same computation through FastTree's <c>Transform</c>), and FastTree also by ML.NET's <c>CalculateFeatureContribution</c> (its trees' per-slot contributions, summed over a one-hot
/// column's slots) — and ranks the features by mean |contribution|, with the rank correlation between the two rankings and
/// the time per explained row.
/// </summary>
internal sealed class TabularExplainCommand : Command<TabularExplainCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--data")]
        [Description("Folder with the developer tabular sets. Default ../shared/data/tabular.")]
        public string Data { get; init; } = BenchmarkPaths.SharedData("tabular");

        [CommandOption("--sets")]
        [Description("Comma-separated binary or regression sets. Default adult,housing.")]
        public string Sets { get; init; } = "adult,housing";

        [CommandOption("--rows")]
        [Description("Test rows explained. Default 200.")]
        public int Rows { get; init; } = 200;

        [CommandOption("--background")]
        [Description("Background rows (maxBackgroundRows). Default 100.")]
        public int Background { get; init; } = 100;

        [CommandOption("--threads")]
        [Description("Torch threads (0: libtorch's default). Default 2.")]
        public int Threads { get; init; } = 2;

        [CommandOption("--out")]
        [Description("Output folder for tabular-explain.md. Default artifacts/tabular-explain.")]
        public string Output { get; init; } = "artifacts/tabular-explain";

        public override ValidationResult Validate() =>
            Rows < 1 || Background < 1 ? ValidationResult.Error("--rows and --background must be positive") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (settings.Threads > 0) TorchSharp.torch.set_num_threads(settings.Threads);
        var report = new StringBuilder($"### Per-row explanations: MemoryFormer's occlusion against FastTree's feature contributions ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)\n\n");
        foreach (var name in settings.Sets.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var ml = new MLContext(seed: 0);
            var set = TabularDataset.Load(ml, settings.Data, name);
            if (set is null)
            {
                AnsiConsole.MarkupLineInterpolated($"[yellow]Skipped {name}: not found in {Path.GetFullPath(settings.Data)} (developer data set, not part of the repository).[/]");
                continue;
            }
            if (set.Task == TabularTask.Multiclass) throw new ArgumentException($"--sets {name}: a multiclass set; FastTree's contributions are per class there. Give binary or regression sets.");
            report.Append(Explain(ml, set, settings));
        }
        report.Append($"\n- `dotnet $B tabular-explain --sets {settings.Sets} --rows {settings.Rows} --background {settings.Background}`; " +
            $"MemoryFormer with the trainer's defaults (seed 0), FastTree with its defaults; torch threads {TorchSharp.torch.get_num_threads()}; " +
            $"load average {Perf.Timing.LoadAverage():F1}\n");
        Directory.CreateDirectory(settings.Output);
        File.WriteAllText(Path.Combine(settings.Output, "tabular-explain.md"), report.ToString());
        AnsiConsole.WriteLine(report.ToString());
        return 0;
    }

    private static string Explain(MLContext ml, TabularDataset set, Settings settings)
    {
        var featurizer = set.Featurize.Fit(set.Train);
        var train = featurizer.Transform(set.Train);
        var rows = ml.Data.TakeRows(set.Test, settings.Rows);
        bool binary = set.Task == TabularTask.Binary;
        using var memoryFormer = binary
            ? ml.BinaryClassification.Trainers.MemoryFormerTabular(new MemoryFormerTabularOptions { Seed = 0 }).Fit(train)
            : ml.Regression.Trainers.MemoryFormerTabular(new MemoryFormerTabularOptions { Seed = 0 }).Fit(train);
        var pipeline = new TransformerChain<ITransformer>(featurizer, memoryFormer);

        var clock = Stopwatch.StartNew();
        // Both models are explained against the training split's first rows (all of them used, so the same background).
        var explanations = ml.Model.ExplainTabular(pipeline, rows, ml.Data.TakeRows(set.Train, settings.Background), classIndex: binary ? 1 : null,
            maxBackgroundRows: settings.Background);
        double msPerRow = clock.Elapsed.TotalMilliseconds / explanations.Count;
        var features = explanations[0].Features;
        var mf = features.Select((_, g) => explanations.Average(e => Math.Abs(e.Features[g].Contribution))).ToArray();
        var (treeOcclusion, trees) = TreeContributions(ml, set, train, featurizer.Transform(rows), features, settings.Background);

        var table = new StringBuilder($"\n**{set.Name}** ({set.Description}): {explanations.Count} test rows explained " +
            $"({(binary ? "P(true)" : "the predicted value")}), {settings.Background} background rows; MemoryFormer " +
            $"{msPerRow:F1} ms per explained row. Spearman ρ of MemoryFormer's ranking with FastTree's by the same occlusion " +
            $"**{Spearman(mf, treeOcclusion):F2}**, with FastTree's own contributions **{Spearman(mf, trees):F2}** (FastTree's two: " +
            $"{Spearman(treeOcclusion, trees):F2})\n\n" +
            "| feature | MemoryFormer: occlusion, mean \\|contribution\\| (rank) | FastTree: the same occlusion (rank) | FastTree: CalculateFeatureContribution (rank) |\n|---|---|---|---|\n");
        double[] mfRank = Ranks(mf), occlusionRank = Ranks(treeOcclusion), treeRank = Ranks(trees);
        foreach (int g in Enumerable.Range(0, features.Count).OrderBy(g => mfRank[g]))
            table.Append($"| {features[g].Name} | {mf[g]:G3} ({mfRank[g]:F0}) | {treeOcclusion[g]:G3} ({occlusionRank[g]:F0}) | {trees[g]:G3} ({treeRank[g]:F0}) |\n");
        return table.ToString();
    }

    /// <summary>FastTree's mean |contribution| per feature over <paramref name="rows"/>: by MemoryFormer's occlusion (against the
    /// same background rows), and by its trees' own per-slot contributions
    /// summed over the feature's slots.</summary>
    private static (double[] Occlusion, double[] Contributions) TreeContributions(MLContext ml, TabularDataset set, IDataView train,
        IDataView rows, IReadOnlyList<FeatureContribution> features, int background)
    {
        ITransformer model;
        float[][] perRow;
        if (set.Task == TabularTask.Binary)
        {
            var binary = ml.BinaryClassification.Trainers.FastTree().Fit(train);
            (model, perRow) = (binary, Contributions(ml.Transforms.CalculateFeatureContribution(binary, normalize: false).Fit(train).Transform(rows)));
        }
        else
        {
            var regression = ml.Regression.Trainers.FastTree().Fit(train);
            (model, perRow) = (regression, Contributions(ml.Transforms.CalculateFeatureContribution(regression, normalize: false).Fit(train).Transform(rows)));
        }
        var occlusion = Occlusion(ml, model, set.Task, Features(rows), Features(ml.Data.TakeRows(train, background)), features);
        return (occlusion, [.. features.Select(f => perRow.Average(r => Math.Abs(r.AsSpan(f.FirstSlot, f.SlotCount).ToArray().Sum())))]);
    }

    /// <summary>Mean |prediction − mean prediction with the feature's slots taken from each background row| of any model that
    /// reads Features (P(true) for binary, the value for regression): the definition MemoryFormer's explanations use.</summary>
    private static double[] Occlusion(MLContext ml, ITransformer model, TabularTask task, float[][] rows, float[][] background,
        IReadOnlyList<FeatureContribution> features)
    {
        int f = rows[0].Length;
        var occluded = new List<float[]>();
        foreach (var row in rows)
        {
            occluded.Add(row);
            foreach (var feature in features)
                foreach (var b in background)
                {
                    var copy = (float[])row.Clone();
                    Array.Copy(b, feature.FirstSlot, copy, feature.FirstSlot, feature.SlotCount);
                    occluded.Add(copy);
                }
        }
        var schema = SchemaDefinition.Create(typeof(FeatureRow));
        schema["Features"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, f);
        var scored = model.Transform(ml.Data.LoadFromEnumerable(occluded.Select(v => new FeatureRow { Features = v }), schema));
        var predictions = scored.GetColumn<float>(task == TabularTask.Binary ? "Probability" : "Score").ToArray();
        int perRow = 1 + features.Count * background.Length;
        return [.. features.Select((_, g) => rows.Select((_, r) => Math.Abs(predictions[r * perRow]
            - predictions.AsSpan(r * perRow + 1 + g * background.Length, background.Length).ToArray().Average())).Average())];
    }

    private static float[][] Features(IDataView data) => [.. data.GetColumn<float[]>("Features")];

    private sealed class FeatureRow
    {
        public float[] Features { get; set; } = [];
    }

    private static float[][] Contributions(IDataView scored) => [.. scored.GetColumn<float[]>("FeatureContributions")];

    /// <summary>Ranks (1 = largest), ties averaged.</summary>
    private static double[] Ranks(double[] values)
    {
        var order = Enumerable.Range(0, values.Length).OrderByDescending(i => values[i]).ToArray();
        var ranks = new double[values.Length];
        for (int start = 0; start < order.Length;)
        {
            int end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]]) end++;
            for (int i = start; i <= end; i++) ranks[order[i]] = (start + end) / 2.0 + 1;
            start = end + 1;
        }
        return ranks;
    }

    private static double Spearman(double[] a, double[] b)
    {
        double[] x = Ranks(a), y = Ranks(b);
        double mx = x.Average(), my = y.Average();
        double cov = x.Zip(y, (p, q) => (p - mx) * (q - my)).Sum();
        return cov / Math.Sqrt(x.Sum(p => (p - mx) * (p - mx)) * y.Sum(q => (q - my) * (q - my)));
    }
}
