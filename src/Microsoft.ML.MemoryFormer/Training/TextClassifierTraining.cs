using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Fine-tunes a <see cref="SequenceClassifier"/> on labelled texts through the one <see cref="TrainingLoop"/>: builds
/// the encoder (fresh, or with a pretrained language model's backbone and tokenizer), encodes the rows once (each as up
/// to <see cref="TextClassifierSettings.MaxWindowsPerRow"/> windows whose logits are averaged), trains for whole epochs
/// with validation on the whole validation set after each, optionally fits a softmax temperature on the validation rows
/// (<see cref="TextClassifierCalibration"/>), and returns the fitted model.
/// </summary>
internal static class TextClassifierTraining
{
    /// <summary>Builds, trains and returns the classifier; on failure or cancellation everything it built (the network,
    /// a pretrained model it loaded) is disposed and nothing is returned.</summary>
    /// <remarks>
    /// Without validation rows and with <see cref="TextClassifierSettings.CalibrationFraction"/> &gt; 0, a stratified
    /// seeded share of the rows (<see cref="CalibrationSplit"/>) is held out only to fit the temperature of a model
    /// trained on the rest (no early stopping); with <see cref="TextClassifierSettings.CalibrationRefit"/> the model is
    /// then trained again, from the same seed, on every row, and keeps that temperature ("fit T, then refit"): its
    /// predictions are those of a run without calibration, at about twice the training cost.
    /// </remarks>
    public static (TextClassifierModel Model, TrainingResult Result) Fit(TextClassifierSettings settings, LabelledTexts train,
        LabelledTexts? validation, int classes, int seed, Device device, TrainingSchedule schedule, Action<string>? log = null,
        IProgress<TrainingProgress>? progress = null, Func<bool>? stopRequested = null, CancellationToken cancellation = default)
    {
        var split = validation is null && settings.CalibrateTemperature && settings.CalibrationFraction > 0
            ? CalibrationSplit.Of(train.Labels, classes, settings.CalibrationFraction, seed) : null;
        if (split is null && validation is null && settings.CalibrateTemperature && settings.CalibrationFraction > 0)
            log?.Invoke($"Calibration: {settings.CalibrationFraction:P0} of {train.Count} rows would hold out fewer than " +
                $"{CalibrationSplit.MinimumRowsPerClass} rows per class; no temperature is fitted.");
        if (split is null)
            return FitOnce(settings, train, validation, null, null, classes, seed, device, schedule, log, progress, stopRequested, cancellation);
        log?.Invoke($"Calibration: {split.Held.Length} of {train.Count} rows held out to fit the temperature" +
            (settings.CalibrationRefit ? ", then the model is trained again on every row." : "."));
        if (!settings.CalibrationRefit)
            return FitOnce(settings, train.Subset(split.Kept), null, train.Subset(split.Held), null, classes, seed, device, schedule,
                log, progress, stopRequested, cancellation);
        // The first run checkpoints beside the second, under its own name (its rows and fingerprint differ): a Fit cancelled or
        // killed in it resumes there, and one cancelled in the second finds it complete.
        TrainingOptions Calibrating(int stepsPerEpoch, bool validated) => schedule(stepsPerEpoch, validated) is var o && o.CheckpointPath is { } path
            ? o with { CheckpointPath = CalibrationCheckpointPath(path) } : o;
        var (held, _) = FitOnce(settings, train.Subset(split.Kept), null, train.Subset(split.Held), null, classes, seed, device, Calibrating,
            log, RunProgress.Of(progress, 1), stopRequested, cancellation);
        double temperature = held.Temperature;
        held.Dispose();
        return FitOnce(settings, train, null, null, temperature, classes, seed, device, schedule, log, RunProgress.Of(progress, 2),
            stopRequested, cancellation);
    }

    /// <summary>Reports a run of "fit T, then refit" with its place among the two.</summary>
    private sealed class RunProgress(IProgress<TrainingProgress> inner, int run) : IProgress<TrainingProgress>
    {
        public static IProgress<TrainingProgress>? Of(IProgress<TrainingProgress>? inner, int run) => inner is null ? null : new RunProgress(inner, run);

        public void Report(TrainingProgress value) => inner.Report(value with { Run = run, Runs = 2 });
    }

    /// <summary>Where the first of the two runs of "fit T, then refit" checkpoints, given the trainer's checkpoint path.</summary>
    public static string CalibrationCheckpointPath(string checkpointPath) => checkpointPath + ".calibration";

    /// <summary>One training run: <paramref name="validation"/> is validated on (and fits the temperature),
    /// <paramref name="calibration"/> only fits the temperature, and <paramref name="temperature"/>, when given, is kept as is.</summary>
    private static (TextClassifierModel Model, TrainingResult Result) FitOnce(TextClassifierSettings settings, LabelledTexts train,
        LabelledTexts? validation, LabelledTexts? calibration, double? temperature, int classes, int seed, Device device,
        TrainingSchedule schedule, Action<string>? log, IProgress<TrainingProgress>? progress, Func<bool>? stopRequested,
        CancellationToken cancellation)
    {
        var initialisation = GeneratorLease.Seeded(seed);       // this run's draws alone until its classifier is built (a checkpoint's load draws too)
        LanguageModel? pretrained = null;
        SequenceClassifier? network = null;
        try
        {
            (pretrained, var pretrainedTokenizer) = settings.PretrainedModel is { } given ? (given, null)
                : settings.PretrainedCheckpointPath is { } path ? PretrainedCheckpoint.Load(path) : ((LanguageModel?)null, (ITextTokenizer?)null);
            var tokenizer = ChooseTokenizer(settings, pretrained, pretrainedTokenizer);
            var config = ChooseArchitecture(settings, pretrained, tokenizer);
            int maxTokens = Math.Min(settings.MaxTokensPerRow, config.ContextLength);
            if (maxTokens < settings.MaxTokensPerRow)
                log?.Invoke($"MaxTokensPerRow lowered from {settings.MaxTokensPerRow} to the pretrained context length {maxTokens}.");

            network = new SequenceClassifier(config, classes, settings.Pooling, settings.Dropout, settings.NgramBuckets, settings.NgramLength);
            initialisation.Dispose();
            if (pretrained is not null) network.LoadBackbone(pretrained.Backbone);
            if (settings.PretrainedCheckpointPath is not null)
            {
                pretrained?.Dispose();
                pretrained = null;
            }
            network.to(device);

            var encoder = new TextPairEncoder(tokenizer, maxTokens);
            var model = network;
            TokenRows Rows(LabelledTexts data) => new(model,
                data.Rows.Select(r => encoder.EncodeWindows(r.Text, r.Second, settings.MaxWindowsPerRow, settings.WindowLayout)).ToArray(), tensor(data.Labels),
                encoder.PadId, device, data.Weights is { } w ? tensor(w) : null);
            using var weights = ClassWeights(settings, train.Labels, classes);
            using var trainRows = Rows(WithOutliers(train, settings.OutlierTexts));
            using var validationRows = validation is null ? null : Rows(validation);
            using var calibrationRows = calibration is null ? null : Rows(calibration);
            var task = new SupervisedTask(new ClassificationObjective(weights, settings.LabelSmoothing, settings.OutlierLossWeight), trainRows, validationRows,
                settings.BatchSize, seed);
            ITrainingTask stoppable = stopRequested is null ? task : new StoppableTask(task, stopRequested);

            var options = schedule(task.StepsPerEpoch, validation is not null);
            var epochLog = log is null ? null : new Action<string>(line => log($"epoch {EpochOf(line, task.StepsPerEpoch)}: {line}"));
            var result = TrainingLoop.Run(network, stoppable, options, progress, epochLog, cancellation,
                () => Fingerprint(settings, config, tokenizer, maxTokens, classes, train, validation));
            var fitOn = calibrationRows ?? validationRows;
            double t = temperature ?? (settings.CalibrateTemperature && fitOn is not null
                ? TextClassifierCalibration.FitTemperature(network, fitOn, settings.BatchSize, log) : 1);
            return (new TextClassifierModel(network, tokenizer, maxTokens, device, settings.MaxWindowsPerRow, t, settings.WindowLayout, settings.ScoringPrecision), result);
        }
        catch
        {
            network?.Dispose();
            if (settings.PretrainedCheckpointPath is not null) pretrained?.Dispose();
            throw;
        }
        finally
        {
            initialisation.Dispose();
        }
    }

    /// <summary>The training rows followed by the outlier rows (target −1, weight 1 where the rows are weighted), which only
    /// the training batches see: class weights, the calibration split and validation use the labelled rows alone.</summary>
    private static LabelledTexts WithOutliers(LabelledTexts train, IReadOnlyList<(string Text, string? Second)>? outliers) =>
        outliers is not { Count: > 0 } ? train
        : new LabelledTexts([.. train.Rows, .. outliers], [.. train.Labels, .. outliers.Select(_ => -1L)],
            train.Weights is { } w ? [.. w, .. outliers.Select(_ => 1f)] : null);

    /// <summary>What identifies the run for its checkpoint besides the training options (which hold the seed).</summary>
    private static RunFingerprint Fingerprint(TextClassifierSettings settings, MemoryFormerConfig config, ITextTokenizer tokenizer,
        int maxTokens, int classes, LabelledTexts train, LabelledTexts? validation)
    {
        var run = new RunFingerprint().WithProperties("Architecture", config.ToJson())
            .With("tokenizer", tokenizer.Describe().ToJson())
            .With("head", $"{classes} classes, {settings.Pooling} pooling, {maxTokens} tokens per row" +
                (settings.MaxWindowsPerRow > 1 ? $" (per window), up to {settings.MaxWindowsPerRow} windows per row" : "") +
                (settings.WindowLayout != WindowLayout.LastMovedBack ? $", {settings.WindowLayout} windows" : "") + $", batches of {settings.BatchSize}" +
                (settings.NgramBuckets > 0 ? $", n-gram bag of {settings.NgramBuckets} buckets, n ≤ {settings.NgramLength}" : ""))
            .With("class weights", settings.ClassWeights is { } w ? string.Join(", ", w) : $"{settings.ClassWeighting}")
            .With("pretrained backbone", settings.PretrainedCheckpointPath ?? (settings.PretrainedModel is null ? "none" : "a model in memory"))
            .WithTexts("training texts", train.Rows.SelectMany(r => new[] { r.Text, r.Second }))
            .WithData<long>("training labels", train.Labels);
        if (train.Weights is { } weights) run = run.WithData<float>("training weights", weights);   // unweighted runs keep their fingerprint
        if (settings.OutlierTexts is { Count: > 0 } outliers)                                      // runs without outliers keep theirs too
            run = run.WithTexts("outlier texts", outliers.SelectMany(r => new[] { r.Text, r.Second }))
                .With("outlier loss weight", settings.OutlierLossWeight.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        if (validation is null) return run;
        run = run.WithTexts("validation texts", validation.Rows.SelectMany(r => new[] { r.Text, r.Second }))
            .WithData<long>("validation labels", validation.Labels);
        return validation.Weights is { } validationWeights ? run.WithData<float>("validation weights", validationWeights) : run;
    }

    private static ITextTokenizer ChooseTokenizer(TextClassifierSettings settings, LanguageModel? pretrained, ITextTokenizer? fromCheckpoint)
    {
        if (fromCheckpoint is not null && settings.Tokenizer is not null
            && settings.Tokenizer.Describe().ToJson() != fromCheckpoint.Describe().ToJson())
            throw new ArgumentException($"The tokenizer option ({settings.Tokenizer.Describe().Kind}) differs from the pretrained " +
                $"checkpoint's ({fromCheckpoint.Describe().Kind}); leave it unset to use the checkpoint's tokenizer.");
        var tokenizer = fromCheckpoint ?? settings.Tokenizer ?? (pretrained is null ? new Gpt2Tokenizer()
            : throw new ArgumentException("A pretrained LanguageModel was given without its tokenizer: set the Tokenizer option to the one it was trained with."));
        if (pretrained is not null && pretrained.Config.VocabularySize < tokenizer.ModelVocabularySize)
            throw new ArgumentException($"The pretrained model's vocabulary ({pretrained.Config.VocabularySize}) is smaller than the " +
                $"tokenizer's ({tokenizer.ModelVocabularySize}); use the tokenizer the model was trained with.");
        return tokenizer;
    }

    private static MemoryFormerConfig ChooseArchitecture(TextClassifierSettings settings, LanguageModel? pretrained, ITextTokenizer tokenizer) =>
        pretrained is not null
            ? pretrained.Config with { Dropout = settings.Dropout, AdaptiveSoftmaxCutoffs = null } // the LM head stays behind
            : (settings.Architecture ?? TextClassifierSettings.DefaultArchitecture) with
            {
                VocabularySize = tokenizer.ModelVocabularySize, ContextLength = settings.MaxTokensPerRow, Dropout = settings.Dropout,
            };

    private static Tensor? ClassWeights(TextClassifierSettings settings, long[] labels, int classes)
    {
        if (settings.ClassWeights is { } explicitWeights)
        {
            if (explicitWeights.Length != classes || explicitWeights.Any(w => !(w >= 0 && float.IsFinite(w))))
                throw new ArgumentException($"ClassWeights must hold {classes} finite non-negative weights, one per class; got {explicitWeights.Length}.");
            return tensor(explicitWeights);
        }
        if (settings.ClassWeighting == ClassWeighting.None) return null;
        var counts = new long[classes];
        foreach (var label in labels) counts[label]++;
        return tensor(counts.Select(n => n == 0 ? 0f : (float)labels.Length / (classes * n)).ToArray());
    }

    private static int EpochOf(string line, int stepsPerEpoch) =>
        line.StartsWith("step ", StringComparison.Ordinal) && int.TryParse(line.AsSpan(5, line.IndexOf('/') - 5), out int step)
            ? (step + stepsPerEpoch - 1) / stepsPerEpoch : 0;
}
