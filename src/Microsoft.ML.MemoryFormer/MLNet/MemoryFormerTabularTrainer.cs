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
/// tokenizer), bidirectional MemoryFormer blocks mix them, a head reads the [CLS] token. Made by
/// <c>mlContext.Regression.Trainers.MemoryFormer</c> and the Options overloads of the binary and multiclass catalogs.
/// </summary>
/// <remarks>
/// <para><b>Input and output columns.</b></para>
/// <list type="table">
/// <listheader><term>Column</term><description>Type</description></listheader>
/// <item><term>Features (input)</term><description>known-size vector of Single; NaN = missing (learned embedding); infinite values are refused</description></item>
/// <item><term>Label (input)</term><description>Single (regression), Boolean (binary), key over UInt32 (multiclass)</description></item>
/// <item><term>Score</term><description>Single (regression, binary margin) or vector of class probabilities with SlotNames (multiclass)</description></item>
/// <item><term>Probability</term><description>Single, binary only</description></item>
/// <item><term>PredictedLabel</term><description>Boolean (binary) or key with the label's KeyValues (multiclass)</description></item>
/// </list>
/// <para><b>Trainer characteristics.</b> Needs normalization: no (slots are standardised inside, statistics saved
/// with the model). Needs caching: no (rows are read once into memory). Missing values: NaN features allowed; rows
/// with a missing label are skipped. Early stopping: on validation loss after each epoch, best weights kept.</para>
/// </remarks>
public sealed class MemoryFormerTabularTrainer : IEstimator<MemoryFormerTabularTransformer>
{
    private readonly IHostEnvironment env;
    private readonly MemoryFormerTabularOptions options;
    private readonly TabularTaskKind kind;

    internal MemoryFormerTabularTrainer(IHostEnvironment env, MemoryFormerTabularOptions options, TabularTaskKind kind)
    {
        this.env = env ?? throw new ArgumentNullException(nameof(env));
        this.options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        this.kind = kind;
        env.ComponentCatalog.RegisterMemoryFormer();
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var columns = inputSchema.ToDictionary(c => c.Name);
        if (!columns.TryGetValue(options.FeatureColumnName, out var features) || features.Kind != SchemaShape.Column.VectorKind.Vector
            || features.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Feature column '{options.FeatureColumnName}' " +
                (features.Name is null ? "was not found" : $"is {features.Kind} of {features.ItemType}") +
                "; expected a known-size vector of Single (float).");
        if (!columns.ContainsKey(options.LabelColumnName))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Label column '{options.LabelColumnName}' was not found.");
        foreach (var column in PredictionColumns.Shapes(kind)) columns[column.Name] = column;
        return new SchemaShape(columns.Values);
    }

    /// <summary>Reads the rows, trains with early stopping on the validation rows and returns the transformer.</summary>
    public MemoryFormerTabularTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var all = FeatureColumnReader.Read(input, options.FeatureColumnName, options.LabelColumnName, kind);
        CheckClasses(all);
        var (train, validation) = options.ValidationSet is { } v
            ? (all, FeatureColumnReader.Read(v, options.FeatureColumnName, options.LabelColumnName, kind))
            : HoldOut(all);
        var scaler = FeatureScaler.Fit(train.Features, train.FeatureCount);
        var (labelMean, labelStd) = kind == TabularTaskKind.Regression ? MeanStd(train.Labels) : (0f, 1f);
        var info = new TabularModelInfo(kind, options.FeatureColumnName, scaler, labelMean, labelStd, all.ClassNames);

        TorchRuntime.Seed(options.Seed);
        var device = TorchRuntime.SelectDevice(options.GpuDeviceId, options.FallbackToCpu);
        var model = new TabularModel(options.Architecture, info.FeatureCount, info.OutputCount);
        model.to(device);
        using var trainTensors = new TensorPair(ToTensors(train, info));
        using var validationTensors = validation is null ? null : new TensorPair(ToTensors(validation, info));
        var task = new TabularTask(model, kind, trainTensors.Pair, validationTensors?.Pair, options.BatchSize, options.Seed, device);
        int epoch = task.StepsPerEpoch;
        var training = new TrainingOptions
        {
            MaxSteps = epoch * options.MaxEpochs, LearningRate = options.LearningRate, TableLearningRate = 3 * options.LearningRate,
            WeightDecay = options.WeightDecay, TableWeightDecay = 0, Beta2 = 0.999, WarmupSteps = Math.Min(epoch, epoch * options.MaxEpochs / 10),
            ValidateEvery = validation is null ? 0 : epoch, EarlyStoppingPatience = validation is null ? 0 : options.EarlyStoppingPatience,
            ReportEvery = epoch,
        };
        var result = TrainingLoop.Run(model, task, training, options.Progress, options.Log);
        return new MemoryFormerTabularTransformer(model, info, device, result);
    }

    private void CheckClasses(TabularData data)
    {
        if (kind == TabularTaskKind.Regression || data.Labels.Distinct().Count() > 1) return;
        throw new InvalidOperationException($"Label column '{options.LabelColumnName}' holds a single class " +
            $"({(kind == TabularTaskKind.BinaryClassification ? data.Labels[0] == 1 : data.ClassNames[(int)data.Labels[0]])}); " +
            "a classifier needs at least two.");
    }

    private (TabularData Train, TabularData? Validation) HoldOut(TabularData all)
    {
        int held = (int)(all.Rows * options.ValidationFraction);
        if (held < 1 || options.EarlyStoppingPatience == 0 || all.Rows - held < 1) return (all, null);
        var order = Enumerable.Range(0, all.Rows).ToArray();
        new Random(options.Seed).Shuffle(order);
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

    private (Tensor X, Tensor Y) ToTensors(TabularData data, TabularModelInfo info)
    {
        var features = (float[])data.Features.Clone();
        info.Scaler.Apply(features);
        var x = tensor(features, [data.Rows, data.FeatureCount]);                          // [N, F]
        var y = kind switch
        {
            TabularTaskKind.Regression => tensor(data.Labels.Select(l => (l - info.LabelMean) / info.LabelStd).ToArray()),
            TabularTaskKind.BinaryClassification => tensor(data.Labels),
            _ => tensor(data.Labels.Select(l => (long)l).ToArray()),
        };                                                                                 // [N]
        return (x, y);
    }

    /// <summary>Owns the tensors of one split for the duration of Fit.</summary>
    private sealed class TensorPair((Tensor X, Tensor Y) pair) : IDisposable
    {
        public (Tensor X, Tensor Y) Pair { get; } = pair;
        public void Dispose() { Pair.X.Dispose(); Pair.Y.Dispose(); }
    }
}
