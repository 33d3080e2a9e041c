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
        [Description("Training epochs (the flat defaults otherwise; they train 5). Default 3.")]
        [DefaultValue(3)]
        public int Epochs { get; init; } = 3;

        [CommandOption("--seed")]
        [Description("The options' Seed (initialisation, batch order, dropout, calibration hold-out). Default 1.")]
        [DefaultValue(1)]
        public int Seed { get; init; } = 1;

        [CommandOption("--train-layout")]
        [Description("The WindowLayout option the classifier is trained with (LastMovedBack, Even, ShortLast). Default LastMovedBack.")]
        [DefaultValue(WindowLayout.LastMovedBack)]
        public WindowLayout TrainLayout { get; init; } = WindowLayout.LastMovedBack;

        [CommandOption("--score-layouts")]
        [Description("Comma-separated window layouts each trained model is scored with, fp32 and bf16 tables each; the first is the reference. Default: the training layout, then the other two.")]
        [DefaultValue("")]
        public string ScoreLayouts { get; init; } = "";
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
                new MemoryFormerTextClassificationOptions { Seed = settings.Seed, Epochs = settings.Epochs, WindowLayout = settings.TrainLayout }).Fit(train);
            AnsiConsole.MarkupLineInterpolated($"{set.Name}: trained in {clock.Elapsed.TotalSeconds:F0} s, seed {settings.Seed}, {settings.TrainLayout} windows, temperature {classifier.Model.Temperature:F3}");
            float[][]? reference = null;
            foreach (var (name, precision, layout) in Ways(settings))
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
                table.AddRow(set.Name + FormattableString.Invariant($" (seed {settings.Seed}, trained {settings.TrainLayout})"), name, scores.Length, FormattableString.Invariant($"{metrics.MicroAccuracy:P2}"), FormattableString.Invariant($"{metrics.LogLoss:F4}"),
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

    /// <summary>Each scoring layout in fp32, then each with bf16 tables; the first fp32 row is every row's reference.</summary>
    private static (string Name, InferencePrecision Precision, WindowLayout Layout)[] Ways(Settings settings)
    {
        var layouts = settings.ScoreLayouts.Length > 0
            ? settings.ScoreLayouts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Enum.Parse<WindowLayout>).ToArray()
            : new[] { settings.TrainLayout }.Concat(Enum.GetValues<WindowLayout>().Where(l => l != settings.TrainLayout)).ToArray();
        return layouts.Select(l => ($"fp32, {l} windows", InferencePrecision.Float32, l))
            .Concat(layouts.Select(l => ($"bf16 tables (BFloat16), {l} windows", InferencePrecision.BFloat16, l))).ToArray();
    }

    private sealed class Scored
    {
        public float[] Score { get; set; } = [];
    }

    private static int ArgMax(float[] values) => Array.IndexOf(values, values.Max());
}
