using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Classification;

/// <summary>
/// Text classification benchmark: MemoryFormer (from scratch, and from a language-model checkpoint when one is given)
/// against ML.NET's FeaturizeText + SdcaMaximumEntropy on the same fixed splits of banking77, clinc150, sms_spam and
/// wikipedia_detox_250. With a checkpoint it also trains the checkpoint's architecture from random weights, so the
/// pretrained row's difference to the scratch rows separates pretraining from architecture.
/// Reports micro/macro accuracy, log-loss, training time and scoring rows/s; writes a Markdown table.
/// </summary>
internal sealed class ClassificationCommand : Command<ClassificationCommand.Settings>
{
    /// <summary>Command-line settings.</summary>
    public sealed class Settings : CommandSettings
    {
        [Description("Folder with the classification data sets.")]
        [CommandOption("--data")]
        public string Data { get; init; } = "../shared/data/classification";

        [Description("Comma-separated data sets: banking77, clinc150, sms_spam, detox, the long-document proxies wikitext15, moby15, mixed15 (LongDocumentSets), and tsv:PATH for a file of label<TAB>text lines (split 80/20 as sms_spam).")]
        [CommandOption("--datasets")]
        public string Datasets { get; init; } = "banking77,clinc150,sms_spam,detox";

        [Description("MemoryFormer training epochs.")]
        [CommandOption("--epochs")]
        public int Epochs { get; init; } = 10;

        [Description("MemoryFormer batch size.")]
        [CommandOption("--batch-size")]
        public int BatchSize { get; init; } = 32;

        [Description("MemoryFormer width d (τ = 8).")]
        [CommandOption("--width")]
        public int Width { get; init; } = 128;

        [Description("MemoryFormer blocks.")]
        [CommandOption("--layers")]
        public int Layers { get; init; } = 2;

        [Description("Longest token row.")]
        [CommandOption("--max-tokens")]
        public int MaxTokens { get; init; } = 64;

        [Description("Most windows of --max-tokens read from one long row (their logits are averaged).")]
        [CommandOption("--max-windows")]
        public int MaxWindows { get; init; } = 4;

        [Description("Fraction of the training rows held out for early stopping and temperature scaling (0 = none).")]
        [CommandOption("--validation-fraction")]
        public double ValidationFraction { get; init; }

        [Description("Early-stopping patience in epochs (needs --validation-fraction; 0 = off).")]
        [CommandOption("--patience")]
        public int Patience { get; init; }

        [Description("Do not fit a softmax temperature on the held-out rows after training.")]
        [CommandOption("--no-calibrate")]
        public bool NoCalibrate { get; init; }

        [Description("Language-model checkpoint (bench pretrain) for the pretrained-backbone run and the same-architecture-from-scratch run (skipped when absent).")]
        [CommandOption("--checkpoint")]
        public string? Checkpoint { get; init; }

        [CommandOption("--fused-padded-attention")]
        [Description("Train with the padded attention in the managed kernel (KernelSettings.FusedPaddedAttention, off by default).")]
        public bool FusedPaddedAttention { get; init; }

        [Description("Comma-separated models to train: sdca, scratch, same-arch (the checkpoint's architecture from random weights), pretrained. Default all.")]
        [CommandOption("--runs")]
        public string Runs { get; init; } = "sdca,scratch,same-arch,pretrained";

        [Description("Learning rate of the pretrained run (tables at 3×). Default: the scratch runs' 1e-3.")]
        [CommandOption("--finetune-lr")]
        public double? FinetuneLearningRate { get; init; }

        [Description("Epochs of the pretrained run. Default: --epochs.")]
        [CommandOption("--finetune-epochs")]
        public int? FinetuneEpochs { get; init; }

        [Description("Train MemoryFormer with the options' flat defaults (only Seed = 1 set) instead of the settings above.")]
        [CommandOption("--flat-defaults")]
        public bool FlatDefaults { get; init; }

        [Description("Option fields to set on top of either configuration, e.g. \"Epochs=4,MaxWindowsPerRow=2\".")]
        [CommandOption("--set")]
        public string? Set { get; init; }

        [Description("Train on at most this many training rows (a seeded sample, the same for every model; 0 = all).")]
        [CommandOption("--max-train-rows")]
        public int MaxTrainRows { get; init; }

        [Description("Skip the FeaturizeText + SdcaMaximumEntropy rows (e.g. when comparing MemoryFormer settings only).")]
        [CommandOption("--skip-sdca")]
        public bool SkipSdca { get; init; }

        [Description("On sets with out-of-scope queries (clinc150: clinc150_oos_test.tsv), also evaluate rejecting low-confidence rows: the threshold is fitted on the in-scope validation split at this in-scope recall (e.g. 0.95), then applied to the test split and the out-of-scope queries. 0 = off.")]
        [CommandOption("--out-of-scope")]
        public double OutOfScopeRecall { get; init; }

        [Description("MemoryFormer runs: train with these texts of no class as the OutlierSet (outlier exposure): 'general' for 8,174 general-text sentences from ../shared/data (OutlierSentences), or a file with one text per line.")]
        [CommandOption("--outliers")]
        public string? Outliers { get; init; }

        [Description("Markdown file the table is written to.")]
        [CommandOption("--output")]
        public string? Output { get; init; }
    }

    private static readonly string[] KnownRuns = ["sdca", "scratch", "same-arch", "pretrained"];

    private sealed class OutlierRow
    {
        public string Text { get; set; } = "";
    }

    /// <inheritdoc />
    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        Runtime.KernelSettings.Current.FusedPaddedAttention = settings.FusedPaddedAttention;
        var ml = new MLContext(seed: 1);
        var (sets, missing) = ClassificationDataset.Load(ml, settings.Data, settings.Datasets.Split(',', StringSplitOptions.TrimEntries));
        missing.ForEach(m => AnsiConsole.MarkupLineInterpolated($"[yellow]{m}[/]"));
        var runs = settings.Runs.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        if (runs.FirstOrDefault(r => !KnownRuns.Contains(r)) is { } unknown)
            throw new ArgumentException($"Unknown run '{unknown}' in --runs (known: {string.Join(", ", KnownRuns)}).");
        bool pretrained = settings.Checkpoint is { } c && File.Exists(c);
        if (!pretrained && (runs.Contains("pretrained") || runs.Contains("same-arch")))
            AnsiConsole.MarkupLineInterpolated($"[yellow]No language-model checkpoint{(settings.Checkpoint is null ? "" : $" at {settings.Checkpoint}")}: the pretrained-backbone and same-architecture runs are skipped.[/]");
        var checkpointArchitecture = pretrained ? ArchitectureOf(settings.Checkpoint!) : null;
        bool sameArchitecture = checkpointArchitecture is not null && runs.Contains("same-arch");
        if (sameArchitecture && Comparable(checkpointArchitecture!) == Comparable(ScratchArchitecture(settings)))
        {
            AnsiConsole.MarkupLine("[yellow]The checkpoint has the scratch run's architecture: the same-architecture run would repeat the scratch run, so it is skipped.[/]");
            sameArchitecture = false;
        }
        var outliers = settings.Outliers is { } source
            ? ml.Data.LoadFromEnumerable(OutlierSentences.Load(source, Path.GetFullPath(Path.Combine(settings.Data, ".."))).Select(t => new OutlierRow { Text = t }))
            : null;
        if (outliers is not null)
            AnsiConsole.MarkupLineInterpolated($"MemoryFormer runs train with {outliers.GetColumn<string>("Text").Count():N0} outlier texts ({settings.Outliers}).");
        var results = new List<ClassificationResult>();
        foreach (var set in sets.Select(d => d.WithTrainingRows(ml, settings.MaxTrainRows)))
        {
            var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(set.Train);
            var (train, test) = (keys.Transform(set.Train), keys.Transform(set.Test));
            var outOfScope = settings.OutOfScopeRecall > 0 && set is { Validation: { } validation, OutOfScope: { } queries }
                ? new OutOfScopeSplits(keys.Transform(validation), keys.Transform(queries), settings.OutOfScopeRecall) : null;
            if (settings.OutOfScopeRecall > 0 && outOfScope is null)
                AnsiConsole.MarkupLineInterpolated($"[yellow]{set.Name}: no in-scope validation split and out-of-scope queries here: --out-of-scope skipped.[/]");
            if (runs.Contains("sdca") && !settings.SkipSdca)
                results.Add(Run(ml, set.Name, outOfScope, "FeaturizeText + SdcaMaximumEntropy", train, test,
                    ml.Transforms.Text.FeaturizeText("Features", "Text").Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy()), "", null));
            if (runs.Contains("scratch"))
            {
                var options = settings.FlatDefaults ? FlatDefaults(settings) : Options(settings, ScratchArchitecture(settings), null);
                options.OutlierSet = outliers;
                results.Add(Run(ml, set.Name, outOfScope, settings.FlatDefaults ? "MemoryFormer (flat defaults)" : "MemoryFormer (scratch)", train, test,
                    ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options),
                    settings.FlatDefaults ? settings.Set ?? "" : Describe(settings, ScratchArchitecture(settings), settings.Epochs), options));
            }
            if (sameArchitecture)
            {
                var options = Options(settings, checkpointArchitecture, null);
                options.OutlierSet = outliers;
                results.Add(Run(ml, set.Name, outOfScope, "MemoryFormer (scratch, checkpoint's architecture)", train, test,
                    ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options),
                    Describe(settings, checkpointArchitecture!, settings.Epochs), options));
            }
            if (pretrained && runs.Contains("pretrained"))
            {
                var options = Options(settings, null, settings.Checkpoint);
                options.OutlierSet = outliers;
                options.Epochs = settings.FinetuneEpochs ?? settings.Epochs;
                options.LearningRate = settings.FinetuneLearningRate ?? options.LearningRate;
                results.Add(Run(ml, set.Name, outOfScope, "MemoryFormer (pretrained)", train, test,
                    ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options),
                    $"{Path.GetFileName(settings.Checkpoint!)}: " + Describe(settings, checkpointArchitecture!, options.Epochs) +
                    FormattableString.Invariant($", learning rate {options.LearningRate:G3}"), options));
            }
        }
        string machine = Perf.MachineFigures.Measure();
        var rejection = ClassificationReport.OutOfScopeRows(results);
        var markdown = ClassificationReport.Markdown(results) + Environment.NewLine +
            (rejection.Count > 0 ? ClassificationReport.OutOfScopeMarkdown(rejection) + Environment.NewLine : "") + machine + Environment.NewLine;
        AnsiConsole.Write(ClassificationReport.Table(results));
        if (rejection.Count > 0)
            AnsiConsole.Write(ClassificationReport.OutOfScopeTable(rejection));
        AnsiConsole.WriteLine(machine);
        if (settings.Output is { } output) File.WriteAllText(output, markdown);
        return 0;
    }

    private static MemoryFormerTextClassificationOptions FlatDefaults(Settings s) =>
        OptionOverrides.Apply(new MemoryFormerTextClassificationOptions { Seed = 1, Log = LogTemperature }, s.Set);

    private static void LogTemperature(string line)
    {
        if (line.StartsWith("Temperature", StringComparison.Ordinal) || line.StartsWith("Calibration", StringComparison.Ordinal))
            AnsiConsole.WriteLine("  " + line);
    }

    private static MemoryFormerConfig ScratchArchitecture(Settings s) => new() { Width = s.Width, Layers = s.Layers, Heads = 4, BitsPerChunk = 8 };

    /// <summary>The architecture saved in a language-model checkpoint.</summary>
    private static MemoryFormerConfig ArchitectureOf(string checkpoint)
    {
        using var lm = MemoryFormerLanguageModelTransformer.Load(checkpoint);
        return lm.Model.Config;
    }

    /// <summary>What the classifier keeps of an architecture: vocabulary, context and dropout are set by the classifier.</summary>
    private static MemoryFormerConfig Comparable(MemoryFormerConfig config) => config with { VocabularySize = 0, ContextLength = 0, Dropout = 0 };

    private static MemoryFormerTextClassificationOptions Options(Settings s, MemoryFormerConfig? architecture, string? checkpoint) => OptionOverrides.Apply(new MemoryFormerTextClassificationOptions
    {
        Architecture = architecture,
        MaxTokensPerRow = s.MaxTokens, BatchSize = s.BatchSize, Epochs = s.Epochs, Seed = 1, PretrainedCheckpointPath = checkpoint,
        MaxWindowsPerRow = s.MaxWindows, ValidationFraction = s.ValidationFraction, EarlyStoppingPatience = s.Patience,
        CalibrateTemperature = !s.NoCalibrate, Log = LogTemperature,
    }, s.Set);

    private static string Describe(Settings s, MemoryFormerConfig architecture, int epochs) => string.Create(CultureInfo.InvariantCulture,
        $"d={architecture.Width}, {architecture.Layers} blocks, τ={architecture.BitsPerChunk}, GPT-2 tokens ≤ {s.MaxTokens} × {s.MaxWindows} windows, {epochs} epochs, batch {s.BatchSize}") +
        (s.Patience > 0 && s.ValidationFraction > 0
            ? string.Create(CultureInfo.InvariantCulture, $", {s.ValidationFraction:P0} held out, patience {s.Patience}") + (s.NoCalibrate ? ", uncalibrated" : ", temperature-scaled")
            : "");

    /// <summary>Test log-loss of the same model at temperature 1, recovered from the calibrated probabilities:
    /// T · log p_T = z − T · logsumexp(z / T), so softmax(T · log p_T) = softmax(z).</summary>
    private static double UncalibratedLogLoss(IDataView scored, double temperature)
    {
        var labels = scored.GetColumn<uint>("Label").ToArray();
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        return labels.Select((label, i) =>
        {
            var z = scores[i].Select(p => temperature * Math.Log(Math.Max(p, 1e-45))).ToArray();
            double max = z.Max();
            return max + Math.Log(z.Sum(v => Math.Exp(v - max))) - z[label - 1];
        }).Average();
    }

    /// <summary>A set's in-scope validation rows (the threshold is fitted on them at <paramref name="Recall"/>) and its out-of-scope queries.</summary>
    private sealed record OutOfScopeSplits(IDataView Validation, IDataView Queries, double Recall);

    private static ClassificationResult Run(MLContext ml, string dataset, OutOfScopeSplits? outOfScope, string name, IDataView train, IDataView test,
        IEstimator<ITransformer> estimator, string notes, MemoryFormerTrainerOptions? options)
    {
        var (trainRows, heldOut) = ClassificationResult.TrainingRows((int)(train.GetRowCount() ?? train.GetColumn<uint>("Label").Count()), options);
        AnsiConsole.MarkupLineInterpolated(
            $"[bold]{dataset}[/]: training {name} on {trainRows:N0} rows{(heldOut > 0 ? $" ({heldOut:N0} more held out for early stopping)" : "")} ...");
        if (options is MemoryFormerTextClassificationOptions { OutlierSet: not null, OutlierLossWeight: var weight })
            notes += FormattableString.Invariant($"; outlier exposure, weight {weight}");
        var clock = Stopwatch.StartNew();
        var model = estimator.Fit(train);
        var trainingTime = clock.Elapsed;
        clock.Restart();
        var scored = model.Transform(test);
        int rows = scored.GetColumn<float[]>("Score").Count();
        double rowsPerSecond = rows / clock.Elapsed.TotalSeconds;
        var metrics = ml.MulticlassClassification.Evaluate(scored);   // a second, untimed pass
        OutOfScopeMetrics? rejection = null;
        if (outOfScope is not null)
        {
            float threshold = ml.MulticlassClassification.FitOutOfScopeThreshold(model.Transform(outOfScope.Validation), outOfScope.Recall);
            rejection = ml.MulticlassClassification.EvaluateOutOfScope(scored, model.Transform(outOfScope.Queries), threshold);
            AnsiConsole.MarkupLineInterpolated(
                $"  out of scope: AUC {rejection.AreaUnderRocCurve:F4}, threshold {rejection.Threshold:G4}, in-scope accuracy {rejection.InScopeAccuracy:P2} (recall {rejection.InScopeRecall:P2}), out-of-scope recall {rejection.OutOfScopeRecall:P2}");
            if (model is MemoryFormerTextClassificationTransformer memoryFormer)
                foreach (var (score, auc) in OutOfScopeScores.Compare(memoryFormer, train, test, outOfScope.Queries))
                    AnsiConsole.MarkupLineInterpolated($"    AUC by {score}: {auc:F4}");
        }
        if (model is MemoryFormerTextClassificationTransformer { Model.Temperature: not 1.0 and var temperature })
            notes += FormattableString.Invariant(
                $"; temperature {temperature:F2}, log-loss without it {UncalibratedLogLoss(scored, temperature):F3}");
        (model as IDisposable)?.Dispose();
        var result = new ClassificationResult(dataset, name, trainRows, heldOut, rows, metrics.MicroAccuracy, metrics.MacroAccuracy,
            metrics.LogLoss, trainingTime, rowsPerSecond, notes) { OutOfScope = rejection };
        AnsiConsole.MarkupLineInterpolated($"  accuracy {result.MicroAccuracy:P2}, macro {result.MacroAccuracy:P2}, log-loss {result.LogLoss:F3}, {trainingTime.TotalSeconds:F0} s, {rowsPerSecond:F0} rows/s");
        return result;
    }
}
