using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Trains a MemoryFormer on the Features vector of a table: each slot becomes a token (FT-Transformer's feature
/// tokenizer; with <see cref="MemoryFormerTabularOptions.GroupOneHotSlots"/>, each one-hot encoded column), bidirectional
/// MemoryFormer blocks mix them, the shared prediction head reads the [CLS] token. Made by
/// <c>mlContext.Regression.Trainers.MemoryFormerTabular(...)</c>, <c>mlContext.BinaryClassification.Trainers.MemoryFormerTabular(...)</c>
/// and <c>mlContext.MulticlassClassification.Trainers.MemoryFormerTabular(...)</c>; the ML.NET-free training is
/// <c>Training/TabularTraining</c>, the prediction <c>Models/TabularPredictor</c> (one per member of an ensemble, <c>Models/TabularEnsemblePredictor</c>).
/// </summary>
/// <remarks>
/// <para><b>Input and output columns.</b></para>
/// <list type="table">
/// <listheader><term>Column</term><description>Type</description></listheader>
/// <item><term>Features (input)</term><description>known-size vector of Single; NaN = missing (learned embedding); infinite values are refused</description></item>
/// <item><term>Label (input)</term><description>Single (regression), Boolean (binary), key over UInt32 (multiclass)</description></item>
/// <item><term>Example weight (input, optional)</term><description>Single ≥ 0, named by <see cref="MemoryFormerTabularOptions.ExampleWeightColumnName"/></description></item>
/// <item><term>Score</term><description>Single (regression value, binary margin) or vector of class probabilities with SlotNames (multiclass)</description></item>
/// <item><term>Probability</term><description>Single, binary only</description></item>
/// <item><term>PredictedLabel</term><description>Boolean (binary) or key with the label's KeyValues, text or numbers (multiclass)</description></item>
/// </list>
/// <para><b>Trainer characteristics.</b> Needs normalization: no (slots are standardised inside; the statistics are
/// saved with the model). Needs caching: no (rows are read into memory once). Missing values: NaN features allowed;
/// rows with a missing label are skipped. Early stopping: on the validation metric (accuracy, or −RMSE) after each
/// epoch, best weights kept. Device from <see cref="MLContext.GpuDeviceId"/> and <see cref="MLContext.FallbackToCpu"/>.
/// A failed or cancelled Fit disposes the model it built.</para>
/// </remarks>
public sealed class MemoryFormerTabularTrainer : IEstimator<MemoryFormerTabularTransformer>
{
    private readonly MemoryFormerTabularOptions options;
    private readonly SupervisedTrainerCore<TabularData> core;
    private readonly IHostEnvironment env;
    private readonly PredictionKind kind;

    internal MemoryFormerTabularTrainer(IHostEnvironment env, MemoryFormerTabularOptions options, PredictionKind kind)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (kind == PredictionKind.Regression && options.LabelSmoothing != 0)
            throw new ArgumentOutOfRangeException(nameof(MemoryFormerTabularOptions.LabelSmoothing), options.LabelSmoothing,
                $"{nameof(MemoryFormerTabularOptions)}.{nameof(MemoryFormerTabularOptions.LabelSmoothing)} applies to classification only; set it to 0 for regression.");
        (this.options, this.env, this.kind) = (options, env, kind);
        core = Core(options);
    }

    private SupervisedTrainerCore<TabularData> Core(MemoryFormerTabularOptions o) =>
        new(env, nameof(MemoryFormerTabularTrainer), kind, o, o.LabelColumnName, (data, label) =>
        {
            var rows = FeatureColumnReader.Read(data, o.FeatureColumnName, label, o.ExampleWeightColumnName);
            return (rows, rows.Skipped);
        });

    /// <summary>The input schema plus the columns ML.NET's own trainers of the task append.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var features = inputSchema.LastOrDefault(c => c.Name == options.FeatureColumnName);
        if (features.Name is null || features.Kind != SchemaShape.Column.VectorKind.Vector || features.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Feature column '{options.FeatureColumnName}' " +
                (features.Name is null ? "was not found" : $"is a {features.Kind} of {features.ItemType}") +
                "; expected a known-size vector of Single (float).");
        WeightColumn.CheckShape(inputSchema, options.ExampleWeightColumnName);
        return core.OutputSchema(inputSchema, "Score", "PredictedLabel");
    }

    /// <summary>Reads the rows, trains with early stopping on the validation rows and returns the transformer; with
    /// <see cref="MemoryFormerTabularOptions.EnsembleSize"/> k &gt; 1, trains k members one after another (seeds Seed, Seed + 1,
    /// …; each with the hold-out of its own seed), and a failure or cancellation disposes every member built.</summary>
    public MemoryFormerTabularTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var torchScope = TorchSharp.torch.NewDisposeScope();               // temporaries stay reachable (Runtime/TorchScope.cs)
        long rows = this.options.SizeAwareDefaults ? CountRows(input) : long.MaxValue;
        var (options, sizeNote) = this.options.ForRows(rows);
        int members = this.options.EnsembleSizeFor(rows);
        var core = Core(options);
        var (label, train, validation, seed) = core.Read(input);
        using var channel = core.Host.Start("Training");
        if (sizeNote is not null) options.LogTo(channel)(sizeNote);
        if (members == 1)
        {
            var (model, result) = Train(options, label, train, validation, seed, core, options.LogTo(channel), options.Progress);
            return new MemoryFormerTabularTransformer(new([model]), [result]);
        }
        var fitted = new List<TabularPredictor>();
        var results = new List<TrainingResult>();
        try
        {
            for (int i = 0; i < members; i++)
            {
                int memberSeed = unchecked(seed + i);
                var member = options.ForMember(i, memberSeed);
                var memberCore = Core(member);
                var (memberTrain, memberValidation) = i == 0 ? (train, validation) : Split(memberCore.Read(input));
                var log = member.LogTo(channel);
                log($"ensemble member {i + 1} of {members}: seed {memberSeed}");
                var progress = member.Progress is { } inner ? new MemberProgress(inner, i + 1, members) : null;
                var (model, result) = Train(member, label, memberTrain, memberValidation, memberSeed, memberCore, log, progress);
                fitted.Add(model);
                results.Add(result);
            }
            return new MemoryFormerTabularTransformer(new(fitted), results);
        }
        catch
        {
            fitted.ForEach(m => m.Dispose());
            throw;
        }
    }

    private static (TabularData Train, TabularData? Validation) Split((LabelColumn Label, TabularData Train, TabularData? Validation, int Seed) read) =>
        (read.Train, read.Validation);

    private static (TabularPredictor Model, TrainingResult Result) Train(MemoryFormerTabularOptions options, LabelColumn label,
        TabularData train, TabularData? validation, int seed, SupervisedTrainerCore<TabularData> core, Action<string> log,
        IProgress<TrainingProgress>? progress) =>
        TabularTraining.Fit(options.Architecture, options.FeatureColumnName, label, train, validation,
            options.BatchSize, seed, core.Device, (stepsPerEpoch, validated) => options.ToTrainingOptions(seed, stepsPerEpoch, validated),
            log, progress, core.IsCanceled, options.CancellationToken,
            (options.NumericEmbedding!.Value, options.PeriodicFrequencies, options.PeriodicScale),           // resolved by ForRows
            (options.PiecewiseLinearBins, options.PiecewiseLinearBinning, options.PiecewiseLinearMinLeafRows), options.GroupOneHotSlots!.Value, options.LabelSmoothing,
            options.Expansion.Any ? options.Expansion : null);

    /// <summary>Reports an ensemble member's progress with its place in the ensemble.</summary>
    private sealed class MemberProgress(IProgress<TrainingProgress> inner, int member, int members) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => inner.Report(value with { EnsembleMember = member, EnsembleSize = members });
    }

    private static long CountRows(IDataView data)
    {
        if (data.GetRowCount() is { } known) return known;
        using var cursor = data.GetRowCursor([]);
        long n = 0;
        while (cursor.MoveNext() && n < MemoryFormerTabularOptions.LargeTableRows) n++;
        return n;
    }
}
