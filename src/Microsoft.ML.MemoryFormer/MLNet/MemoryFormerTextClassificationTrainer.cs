using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Fine-tunes a MemoryFormer encoder to classify text; created by
/// <c>mlContext.MulticlassClassification.Trainers.MemoryFormer(...)</c> or
/// <c>mlContext.BinaryClassification.Trainers.MemoryFormer(...)</c>.
/// </summary>
/// <remarks>
/// <para><b>Input and output columns</b></para>
/// <list type="table">
/// <listheader><term>Column</term><description>Type</description></listheader>
/// <item><term>Text (and optional second text)</term><description>String</description></item>
/// <item><term>Label</term><description>key (multiclass; apply MapValueToKey) or Boolean (binary)</description></item>
/// <item><term>Score</term><description>multiclass: vector of Single class probabilities with SlotNames; binary: Single margin</description></item>
/// <item><term>Probability</term><description>binary only: Single, P(true)</description></item>
/// <item><term>PredictedLabel</term><description>multiclass: key with the label's KeyValues; binary: Boolean</description></item>
/// </list>
/// <para><b>Trainer characteristics</b>: machine learning task multiclass or binary classification; needs
/// normalization no; needs caching no (rows are read into memory once); required NuGet besides ML.NET
/// Microsoft.ML.MemoryFormer (TorchSharp-cpu or a CUDA backend). The encoder attends bidirectionally with padded
/// positions masked; every epoch can be validated on a whole validation set, with early stopping on its accuracy.</para>
/// </remarks>
public sealed class MemoryFormerTextClassificationTrainer : IEstimator<MemoryFormerTextClassificationTransformer>
{
    private readonly IHost host;
    private readonly PredictionKind kind;
    private readonly MemoryFormerTextClassificationOptions options;

    internal MemoryFormerTextClassificationTrainer(IHostEnvironment env, PredictionKind kind, MemoryFormerTextClassificationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        env.ComponentCatalog.RegisterMemoryFormer();
        host = env.Register(nameof(MemoryFormerTextClassificationTrainer));
        this.kind = kind;
        this.options = options;
    }

    private TextColumns Texts => new(options.TextColumnName, options.SecondTextColumnName);

    /// <summary>Reads the rows into memory, trains the encoder and returns the scoring transformer.</summary>
    public MemoryFormerTextClassificationTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var label = LabelColumn.Of(input.Schema, options.LabelColumnName, kind);
        var train = ReadChecked(input, label, "training data");
        var distinct = train.Labels.Distinct().Count();
        if (distinct < 2)
            throw new ArgumentException($"The training data's label column '{label.Name}' holds a single class" +
                (label.ClassNames is { } names ? $" ('{names[train.Labels[0]]}')" : "") + ": a classifier needs rows of at least two classes.");
        LabelledTexts? validation = null;
        if (options.ValidationSet is { } validationSet)
        {
            label.CheckSameClasses(LabelColumn.Of(validationSet.Schema, label.Name, kind), "validation set");
            validation = ReadChecked(validationSet, label, "validation set");
        }

        using var channel = host.Start("Training");
        int seed = options.Seed ?? host.Rand.Next();
        var (model, result) = TextClassifierTraining.Fit(options.ToSettings(seed), train, validation, label.Classes,
            MLContextDevice.Of(host), line => channel.Info(MessageSensitivity.None, line), options.Progress,
            () => MLNetInternals.IsCanceled(host), options.CancellationToken);
        channel.Info(MessageSensitivity.None, $"Trained {result.Steps} steps in {result.Elapsed.TotalSeconds:F1} s" +
            (result.BestValidationMetric is { } accuracy ? $", best validation accuracy {accuracy:P2}" : "") +
            (result.StoppedEarly ? " (stopped early)" : "") + ".");
        return new MemoryFormerTextClassificationTransformer(model, kind, Texts, label,
            new PredictionColumns(label, options.ScoreColumnName, options.PredictedLabelColumnName), options.BatchSize * 2, result);
    }

    /// <summary>The input schema plus Score (and Probability) and PredictedLabel, as ML.NET's own classifiers.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Texts.CheckShape(inputSchema);
        var labelShape = inputSchema.Where(c => c.Name == options.LabelColumnName).ToArray();
        if (labelShape.Length == 0)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"The label column '{options.LabelColumnName}' is not in the data.");
        var label = labelShape[^1];
        bool ok = kind == PredictionKind.MulticlassClassification ? label.IsKey : label.ItemType is BooleanDataViewType;
        if (!ok || label.Kind != SchemaShape.Column.VectorKind.Scalar)
            throw LabelColumn.WrongType(label.Name, label.ItemType, kind);
        var names = label.Annotations.Any(a => a.Name == "KeyValues") ? new string[KeyCount(label)] : null;
        var outputs = new PredictionColumns(new LabelColumn(label.Name, kind, kind == PredictionKind.BinaryClassification ? 2 : KeyCount(label), names),
            options.ScoreColumnName, options.PredictedLabelColumnName).Shape();
        var columns = inputSchema.ToDictionary(c => c.Name);
        foreach (var column in outputs) columns[column.Name] = column;
        return new SchemaShape(columns.Values);
    }

    private static int KeyCount(SchemaShape.Column label) => label.ItemType is KeyDataViewType key ? (int)key.Count : 1;

    private LabelledTexts ReadChecked(IDataView data, LabelColumn label, string what)
    {
        var (rows, skipped) = LabelledTextReader.Read(data, Texts, label);
        if (rows.Count == 0)
            throw new ArgumentException($"The {what} has no rows" + (skipped > 0 ? $" with a label ({skipped} rows have a missing label)" : "") + ".");
        if (skipped > 0)
            using (var channel = host.Start("Reading"))
                channel.Warning(MessageSensitivity.None, $"Skipped {skipped} rows of the {what} whose label is missing.");
        return rows;
    }
}
