using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Benchmarks.Classification;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Text;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf scoring-precision</c> (issue 16, scoring target): the accuracy cost of lower-precision batched scoring
/// (<c>UseInferencePrecision(BFloat16)</c>: bf16 tables) and of the opt-in short last window of long rows
/// (<c>TextClassifierModel.ScoringWindowLayout</c>: less work, other windows than in training) on classifiers trained with the flat defaults
/// on developer sets (banking77, a long-document proxy): accuracy, log-loss and argmax agreement with fp32 scoring of the
/// same trained model, and the largest difference of a log-probability. Deterministic; no timing.
/// </summary>
internal sealed class ScoringPrecisionCommand : Command<ScoringPrecisionCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--datasets")]
        [Description("Comma-separated developer sets (as the classification benchmark). Default banking77,moby15.")]
        [DefaultValue("banking77,moby15")]
        public string Datasets { get; init; } = "banking77,moby15";

        [CommandOption("--max-train-rows")]
        [Description("A seeded sample of this many training rows (0 = all). Default 2000.")]
        [DefaultValue(2000)]
        public int MaxTrainRows { get; init; } = 2000;

        [CommandOption("--epochs")]
        [Description("Training epochs (the flat defaults otherwise). Default 3.")]
        [DefaultValue(3)]
        public int Epochs { get; init; } = 3;
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        var ml = new MLContext(seed: 1);
        var names = settings.Datasets.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var (sets, missing) = ClassificationDataset.Load(ml, BenchmarkPaths.SharedData("classification"), names);
        foreach (var line in missing) AnsiConsole.MarkupLineInterpolated($"[yellow]{line}[/]");
        var table = new PerfTable("scoring-precision", FormattableString.Invariant($"Accuracy cost of lower-precision batched scoring (flat defaults, {settings.Epochs} epochs, ≤ {settings.MaxTrainRows} training rows)"),
            "set", "precision", "test rows", "accuracy (micro)", "log-loss", "argmax equal to fp32", "max |Δ log p| vs fp32", "mean |Δ log p| vs fp32");
        foreach (var set in sets.Select(d => d.WithTrainingRows(ml, settings.MaxTrainRows)))
        {
            var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(set.Train);
            var (train, test) = (keys.Transform(set.Train), keys.Transform(set.Test));
            var clock = Stopwatch.StartNew();
            var classifier = ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(
                new MemoryFormerTextClassificationOptions { Seed = 1, Epochs = settings.Epochs }).Fit(train);
            AnsiConsole.MarkupLineInterpolated($"{set.Name}: trained in {clock.Elapsed.TotalSeconds:F0} s");
            float[][]? reference = null;
            foreach (var (name, precision, layout) in new[]
            {
                ("fp32", InferencePrecision.Float32, WindowLayout.LastMovedBack), ("bf16 tables (BFloat16)", InferencePrecision.BFloat16, WindowLayout.LastMovedBack),
                ("fp32, short last window (ScoringWindowLayout ShortLast)", InferencePrecision.Float32, WindowLayout.ShortLast),
                ("fp32, even windows (ScoringWindowLayout Even)", InferencePrecision.Float32, WindowLayout.Even),
                ("bf16 tables, short last window", InferencePrecision.BFloat16, WindowLayout.ShortLast),
                ("bf16 tables, even windows", InferencePrecision.BFloat16, WindowLayout.Even),
            })
            {
                classifier.UseInferencePrecision(precision);
                classifier.Model.ScoringWindowLayout = layout;
                var scored = classifier.Transform(test);
                var metrics = ml.MulticlassClassification.Evaluate(scored);
                var scores = ml.Data.CreateEnumerable<Scored>(scored, reuseRowObject: false).Select(s => s.Score.Select(p => (float)Math.Log(Math.Max(p, 1e-30f))).ToArray()).ToArray();
                reference ??= scores;
                var pairs = scores.Zip(reference).ToArray();
                int same = pairs.Count(p => ArgMax(p.First) == ArgMax(p.Second));
                double max = pairs.Max(p => p.First.Zip(p.Second).Max(v => Math.Abs(v.First - v.Second)));
                double mean = pairs.Average(p => p.First.Zip(p.Second).Average(v => Math.Abs(v.First - v.Second)));
                table.AddRow(set.Name, name, scores.Length, FormattableString.Invariant($"{metrics.MicroAccuracy:P2}"), FormattableString.Invariant($"{metrics.LogLoss:F4}"),
                    FormattableString.Invariant($"{same}/{scores.Length} ({(double)same / scores.Length:P2})"), FormattableString.Invariant($"{max:g3}"), FormattableString.Invariant($"{mean:g3}"));
            }
            classifier.UseInferencePrecision(InferencePrecision.Float32);
            classifier.Model.ScoringWindowLayout = classifier.Model.WindowLayout;
        }
        table.AddNote("the same trained model scored both ways; Δ log p from ML.NET's Score column (probabilities)");
        table.AddNote(FormattableString.Invariant($"load average {Timing.LoadAverage():F2} (accuracy only: deterministic, load does not matter)"));
        table.Publish(settings.Output);
        return 0;
    }

    private sealed class Scored
    {
        public float[] Score { get; set; } = [];
    }

    private static int ArgMax(float[] values) => Array.IndexOf(values, values.Max());
}
