using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Trains a <see cref="TabularModel"/> on feature rows in memory through the one <see cref="TrainingLoop"/>, without
/// ML.NET: learns the per-slot standardisation (and, for regression, the label's mean and spread) on the training
/// rows, trains whole epochs with validation after each, and returns the fitted <see cref="TabularPredictor"/>. On
/// failure or cancellation the model is disposed and nothing is returned.
/// </summary>
internal static class TabularTraining
{
    /// <param name="architecture">Width, blocks, heads, τ, dropout; the context length is set from the feature count.</param>
    /// <param name="featureColumnName">The feature column the predictor will read (saved with it).</param>
    /// <param name="label">The label: task, classes, class names.</param>
    /// <param name="train">Training rows.</param>
    /// <param name="validation">Validation rows, or null.</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="seed">Seeds initialisation, batch order and dropout.</param>
    /// <param name="device">Where to train.</param>
    /// <param name="schedule">The training loop's options for the run's steps per epoch.</param>
    /// <param name="log">Log lines.</param>
    /// <param name="progress">Progress after every epoch.</param>
    /// <param name="stopRequested">Polled before every step, next to <paramref name="cancellation"/>.</param>
    /// <param name="cancellation">Stops between steps.</param>
    /// <param name="embedding">How numeric slots become tokens, and for periodic embeddings k and σ (saved with the model).</param>
    /// <param name="bins">Piecewise-linear embeddings: the most bins per slot, how their edges are chosen on the
    /// standardised training rows and, for tree bins, the fewest rows a bin may hold (null: the default rule); the edges
    /// are saved with the model.</param>
    /// <param name="groupOneHot">Whether each one-hot group of slots becomes one token (<see cref="OneHotGroups"/>; the
    /// grouping is found on the raw training rows and saved with the model).</param>
    /// <param name="labelSmoothing">Classification: label smoothing of the training cross-entropy (0 = none).</param>
    /// <param name="expansion">Value categories and target encodings appended to every row (<see cref="FeatureExpansion"/>;
    /// fitted on the training rows and saved with the model); null adds nothing.</param>
    public static (TabularPredictor Model, TrainingResult Result) Fit(MemoryFormerConfig architecture, string featureColumnName,
        LabelColumn label, TabularData train, TabularData? validation, int batchSize, int seed, Device device,
        TrainingSchedule schedule, Action<string>? log = null, IProgress<TrainingProgress>? progress = null,
        Func<bool>? stopRequested = null, CancellationToken cancellation = default,
        (TabularNumericEmbedding Kind, int Frequencies, double Scale) embedding = default,
        (int Count, TabularBinning Binning, int? MinLeafRows) bins = default, bool groupOneHot = false, double labelSmoothing = 0,
        ExpansionSettings? expansion = null)
    {
        bool regression = label.Kind == PredictionKind.Regression;
        var slotTokens = groupOneHot ? OneHotGroups.Find(train.Features, train.FeatureCount) : null;
        var expanded = expansion is null ? null : FeatureExpansion.Fit(train, expansion, regression ? 0 : label.Classes, seed);
        if (expanded is var (added, expandedTrain))
        {
            slotTokens = added.SlotTokens(slotTokens);
            validation = validation is null ? null : validation with
            {
                Features = added.Apply(validation.Features, validation.Rows), FeatureCount = added.OutputCount,
            };
            train = train with { Features = expandedTrain, FeatureCount = added.OutputCount };
            log?.Invoke($"feature expansion: {added.InputCount} slots to {added.OutputCount}: {added.ValueCategories.Length} " +
                $"value-category slots ({string.Join(", ", added.ValueCategories.Select(v => $"slot {v.Slot}: {v.Values.Length}"))}), " +
                $"{added.TargetEncodings.Length} target-encoded groups");
        }
        var scaler = FeatureScaler.Fit(train.Features, train.FeatureCount);
        if (slotTokens is not null)
        {
            scaler = scaler.WithRawGroups(slotTokens);
            log?.Invoke($"one-hot groups: {train.FeatureCount} slots as {OneHotGroups.TokenCount(slotTokens)} tokens");
        }
        var (labelMean, labelStd) = regression ? MeanStd(train.Labels) : (0f, 1f);
        bool periodic = embedding.Kind is TabularNumericEmbedding.Periodic or TabularNumericEmbedding.PeriodicLinear;
        float[][]? edges = null;
        if (embedding.Kind == TabularNumericEmbedding.PiecewiseLinear)
        {
            var standardised = (float[])train.Features.Clone();
            scaler.Apply(standardised);
            edges = BinEdges.Fit(standardised, train.FeatureCount, bins.Count, bins.Binning, train.Labels, regression ? 0 : label.Classes,
                bins.MinLeafRows, train.Weights);
            log?.Invoke($"piecewise-linear embedding: {bins.Binning} bins, {edges.Sum(e => e.Length - 1)} in all over " +
                $"{edges.Length} slots ({edges.Count(e => e.Length > 2)} slots with more than one)");
        }
        var info = new TabularModelInfo(featureColumnName, label, scaler, labelMean, labelStd, embedding.Kind,
            periodic ? embedding.Frequencies : 0, edges, slotTokens, expanded?.Expansion);

        TabularModel model;
        using (GeneratorLease.Seeded(seed))                                        // the initial weights: this run's draws alone
            model = new TabularModel(architecture, info.FeatureCount, info.OutputCount, embedding.Kind, info.PeriodicFrequencies,
                embedding.Scale, edges, slotTokens);
        try
        {
            model.to(device);
            using var trainRows = Rows(model, train, info, device);
            using var validationRows = validation is null ? null : Rows(model, validation, info, device);
            SupervisedObjective objective = regression ? new RegressionObjective() : new ClassificationObjective(labelSmoothing: labelSmoothing);
            var task = new SupervisedTask(objective, trainRows, validationRows, batchSize, seed);
            ITrainingTask stoppable = stopRequested is null ? task : new StoppableTask(task, stopRequested);
            var options = schedule(task.StepsPerEpoch, validation is not null);
            var result = TrainingLoop.Run(model, stoppable, options, progress, log, cancellation,
                () => Fingerprint(architecture, label, batchSize, train, validation, embedding, bins, slotTokens, labelSmoothing)
                    .WithExpansion(expanded?.Expansion));
            return (new TabularPredictor(model, info, device), result);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The warm-up of a tabular run: one epoch, or a tenth of the run when that is shorter.</summary>
    public static int WarmupSteps(int stepsPerEpoch, int steps) => Math.Min(stepsPerEpoch, steps / 10);

    /// <summary>What identifies the run for its checkpoint besides the training options (which hold the seed).</summary>
    private static RunFingerprint Fingerprint(MemoryFormerConfig architecture, LabelColumn label, int batchSize,
        TabularData train, TabularData? validation, (TabularNumericEmbedding Kind, int Frequencies, double Scale) embedding,
        (int Count, TabularBinning Binning, int? MinLeafRows) bins, int[]? slotTokens, double labelSmoothing)
    {
        var run = new RunFingerprint().WithProperties("Architecture", architecture.ToJson())
            .With("task", $"{label.Kind}, {label.Classes} classes, {train.FeatureCount} features, batches of {batchSize}")
            .WithData<float>("training features", train.Features).WithData<float>("training labels", train.Labels);
        if (train.Weights is { } weights) run = run.WithData<float>("training weights", weights);   // unweighted runs keep their fingerprint
        if (embedding.Kind == TabularNumericEmbedding.PiecewiseLinear)
            run = run.With("numeric embedding", $"{embedding.Kind}, {bins.Count} {bins.Binning} bins" +
                (bins.MinLeafRows is { } least ? $", at least {least} rows a bin" : ""));   // unset: the fingerprint it had before the option
        else if (embedding.Kind != TabularNumericEmbedding.Linear)   // linear runs keep the fingerprint they had before the option
            run = run.With("numeric embedding", string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{embedding.Kind}, k = {embedding.Frequencies}, σ = {embedding.Scale:R}"));
        if (slotTokens is not null) run = run.With("one-hot groups", string.Join(",", slotTokens));
        if (labelSmoothing != 0)   // runs without it keep the fingerprint they had before the option
            run = run.With("label smoothing", labelSmoothing.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        if (validation is null) return run;
        run = run.WithData<float>("validation features", validation.Features).WithData<float>("validation labels", validation.Labels);
        return validation.Weights is { } validationWeights ? run.WithData<float>("validation weights", validationWeights) : run;
    }

    /// <summary>The run's fingerprint with the expansion's settings, when it has one (runs without keep their fingerprint).</summary>
    private static RunFingerprint WithExpansion(this RunFingerprint run, FeatureExpansion? expansion) => expansion is null ? run
        : run.With("feature expansion", System.Text.Json.JsonSerializer.Serialize(expansion));

    private static (float Mean, float Std) MeanStd(float[] values)
    {
        double mean = values.Average();
        double std = Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
        return ((float)mean, std > 1e-12 ? (float)std : 1f);
    }

    private static FeatureRows Rows(TabularModel model, TabularData data, TabularModelInfo info, Device device)
    {
        var features = (float[])data.Features.Clone();
        info.Scaler.Apply(features);
        var targets = info.Label.Kind == PredictionKind.Regression
            ? tensor(data.Labels.Select(l => (l - info.LabelMean) / info.LabelStd).ToArray())           // [N] float
            : tensor(data.Labels.Select(l => (long)l).ToArray());                                        // [N] int64
        return new FeatureRows(model, tensor(features, [data.Rows, data.FeatureCount]), targets, device,
            data.Weights is { } w ? tensor(w) : null);                                                     // [N] float
    }
}
