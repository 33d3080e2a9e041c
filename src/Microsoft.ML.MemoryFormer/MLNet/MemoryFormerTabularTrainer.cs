using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Trains a MemoryFormer on the Features vector of a table: each slot becomes a token (FT-Transformer's feature
/// tokenizer), bidirectional MemoryFormer blocks mix them, the shared prediction head reads the [CLS] token. Made by
/// <c>mlContext.Regression.Trainers.MemoryFormer</c> and the <see cref="MemoryFormerTabularOptions"/> overloads of
/// the binary and multiclass catalogs.
/// </summary>
/// <remarks>
/// <para><b>Input and output columns.</b></para>
/// <list type="table">
/// <listheader><term>Column</term><description>Type</description></listheader>
/// <item><term>Features (input)</term><description>known-size vector of Single; NaN = missing (learned embedding); infinite values are refused</description></item>
/// <item><term>Label (input)</term><description>Single (regression), Boolean (binary), key over UInt32 (multiclass)</description></item>
/// <item><term>Score</term><description>Single (regression value, binary margin) or vector of class probabilities with SlotNames (multiclass)</description></item>
/// <item><term>Probability</term><description>Single, binary only</description></item>
/// <item><term>PredictedLabel</term><description>Boolean (binary) or key with the label's KeyValues (multiclass)</description></item>
/// </list>
/// <para><b>Trainer characteristics.</b> Needs normalization: no (slots are standardised inside; the statistics are
/// saved with the model). Needs caching: no (rows are read into memory once). Missing values: NaN features allowed;
/// rows with a missing label are skipped. Early stopping: on the validation metric (accuracy, or −RMSE) after each
/// epoch, best weights kept. Device from <see cref="MLContext.GpuDeviceId"/>.</para>
/// </remarks>
public sealed class MemoryFormerTabularTrainer : IEstimator<MemoryFormerTabularTransformer>
{
    private readonly IHost host;
    private readonly MemoryFormerTabularOptions options;
    private readonly PredictionKind kind;

    internal MemoryFormerTabularTrainer(IHostEnvironment env, MemoryFormerTabularOptions options, PredictionKind kind)
    {
        ArgumentNullException.ThrowIfNull(env);
        this.options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        this.kind = kind;
        env.ComponentCatalog.RegisterMemoryFormer();
        host = env.Register(nameof(MemoryFormerTabularTrainer));
    }

    /// <summary>The input schema plus the columns ML.NET's own trainers of the task append.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var columns = inputSchema.ToDictionary(c => c.Name);
        if (!columns.TryGetValue(options.FeatureColumnName, out var features) || features.Kind != SchemaShape.Column.VectorKind.Vector
            || features.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Feature column '{options.FeatureColumnName}' " +
                (features.Name is null ? "was not found" : $"is a {features.Kind} of {features.ItemType}") +
                "; expected a known-size vector of Single (float).");
        if (!columns.TryGetValue(options.LabelColumnName, out var label))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"The label column '{options.LabelColumnName}' is not in the data.");
        int classes = kind switch
        {
            PredictionKind.Regression => 1,
            PredictionKind.BinaryClassification => 2,
            _ => label.ItemType is KeyDataViewType key ? (int)key.Count : 1,
        };
        var names = label.Annotations.Any(a => a.Name == "KeyValues") ? new string[classes] : null;
        foreach (var column in new PredictionColumns(new LabelColumn(label.Name, kind, classes, names), "Score", "PredictedLabel").Shape())
            columns[column.Name] = column;
        return new SchemaShape(columns.Values);
    }

    /// <summary>Reads the rows, trains with early stopping on the validation rows and returns the transformer.</summary>
    public MemoryFormerTabularTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var label = LabelColumn.Of(input.Schema, options.LabelColumnName, kind);
        var all = Read(input, label, "training data");
        CheckClasses(all, label);
        int seed = options.Seed ?? host.Rand.Next();
        var (train, validation) = options.ValidationSet is { } v ? (all, ReadValidation(v, label)) : HoldOut(all, seed);
        var scaler = FeatureScaler.Fit(train.Features, train.FeatureCount);
        var (labelMean, labelStd) = kind == PredictionKind.Regression ? MeanStd(train.Labels) : (0f, 1f);
        var info = new TabularModelInfo(options.FeatureColumnName, label, scaler, labelMean, labelStd);

        TorchRuntime.Seed(seed);
        var device = MLContextDevice.Of(host);
        var model = new TabularModel(options.Architecture, info.FeatureCount, info.OutputCount);
        model.to(device);
        using var trainRows = Rows(model, train, info, device);
        using var validationRows = validation is null ? null : Rows(model, validation, info, device);
        SupervisedObjective objective = kind == PredictionKind.Regression ? new RegressionObjective() : new ClassificationObjective();
        var task = new SupervisedTask(objective, trainRows, validationRows, options.BatchSize, seed);
        var stoppable = new StoppableTask(task, () => MLNetInternals.IsCanceled(host));
        int epoch = task.StepsPerEpoch, steps = epoch * options.MaxEpochs;
        var training = new TrainingOptions
        {
            MaxSteps = steps, LearningRate = options.LearningRate, TableLearningRate = 3 * options.LearningRate,
            WeightDecay = options.WeightDecay, TableWeightDecay = 0, Beta2 = 0.999, TableMomentPrecision = options.TableMomentPrecision, WarmupSteps = Math.Min(epoch, steps / 10),
            ValidateEvery = validation is null ? 0 : epoch, EarlyStoppingPatience = validation is null ? 0 : options.EarlyStoppingPatience,
            ReportEvery = epoch, Seed = seed, CheckpointPath = options.CheckpointPath,
            CheckpointEverySteps = options.CheckpointEverySteps, CheckpointInterval = options.CheckpointInterval,
        };
        using var channel = host.Start("Training");
        var result = TrainingLoop.Run(model, stoppable, training, options.Progress,
            line => { channel.Info(MessageSensitivity.None, line); options.Log?.Invoke(line); }, options.CancellationToken,
            () => Fingerprint(train, validation, label));
        return new MemoryFormerTabularTransformer(model, info, device, result);
    }

    /// <summary>What identifies the run for its checkpoint besides the training options (which hold the seed).</summary>
    private RunFingerprint Fingerprint(TabularData train, TabularData? validation, LabelColumn label)
    {
        var run = new RunFingerprint().WithProperties("Architecture", options.Architecture.ToJson())
            .With("task", $"{kind}, {label.Classes} classes, {train.FeatureCount} features, batches of {options.BatchSize}")
            .WithData<float>("training features", train.Features).WithData<float>("training labels", train.Labels);
        return validation is null ? run
            : run.WithData<float>("validation features", validation.Features).WithData<float>("validation labels", validation.Labels);
    }

    private TabularData Read(IDataView data, LabelColumn label, string what)
    {
        var rows = FeatureColumnReader.Read(data, options.FeatureColumnName, label);
        if (rows.Rows == 0)
            throw new ArgumentException($"The {what} has no rows" + (rows.Skipped > 0 ? $" with a label ({rows.Skipped} rows have a missing label)" : "") + ".");
        if (rows.Skipped > 0)
            using (var channel = host.Start("Reading"))
                channel.Warning(MessageSensitivity.None, $"Skipped {rows.Skipped} rows of the {what} whose label is missing.");
        return rows;
    }

    private TabularData ReadValidation(IDataView data, LabelColumn label)
    {
        label.CheckSameClasses(LabelColumn.Of(data.Schema, label.Name, kind), "validation set");
        return Read(data, label, "validation set");
    }

    private static void CheckClasses(TabularData data, LabelColumn label)
    {
        if (label.Kind == PredictionKind.Regression || data.Labels.Distinct().Count() > 1) return;
        throw new ArgumentException($"The training data's label column '{label.Name}' holds a single class" +
            (label.ClassNames is { } names ? $" ('{names[(int)data.Labels[0]]}')" : "") + ": a classifier needs rows of at least two classes.");
    }

    private (TabularData Train, TabularData? Validation) HoldOut(TabularData all, int seed)
    {
        int held = (int)(all.Rows * options.ValidationFraction);
        if (held < 1 || options.EarlyStoppingPatience == 0 || all.Rows - held < 1) return (all, null);
        var order = Enumerable.Range(0, all.Rows).ToArray();
        new Random(seed).Shuffle(order);
        return (Subset(all, order[held..]), Subset(all, order[..held]));
    }

    private static TabularData Subset(TabularData data, int[] rows)
    {
        int f = data.FeatureCount;
        var features = new float[rows.Length * f];
        for (int i = 0; i < rows.Length; i++) data.Features.AsSpan(rows[i] * f, f).CopyTo(features.AsSpan(i * f));
        return data with { Features = features, Labels = rows.Select(r => data.Labels[r]).ToArray() };
    }

    private static (float Mean, float Std) MeanStd(float[] values)
    {
        double mean = values.Average();
        double std = Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
        return ((float)mean, std > 1e-12 ? (float)std : 1f);
    }

    private FeatureRows Rows(TabularModel model, TabularData data, TabularModelInfo info, Device device)
    {
        var features = (float[])data.Features.Clone();
        info.Scaler.Apply(features);
        var targets = kind == PredictionKind.Regression
            ? tensor(data.Labels.Select(l => (l - info.LabelMean) / info.LabelStd).ToArray())           // [N] float
            : tensor(data.Labels.Select(l => (long)l).ToArray());                                        // [N] int64
        return new FeatureRows(model, tensor(features, [data.Rows, data.FeatureCount]), targets, device);
    }
}
