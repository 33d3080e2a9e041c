using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Fine-tunes a MemoryFormer encoder to classify text; created by
/// <c>mlContext.MulticlassClassification.Trainers.MemoryFormerTextClassification(...)</c> or
/// <c>mlContext.BinaryClassification.Trainers.MemoryFormerTextClassification(...)</c>. The ML.NET-free training is
/// <c>Training/TextClassifierTraining</c>, the prediction <c>Models/TextClassifierModel</c>.
/// </summary>
/// <remarks>
/// <para><b>Input and output columns</b></para>
/// <list type="table">
/// <listheader><term>Column</term><description>Type</description></listheader>
/// <item><term>Text (and optional second text)</term><description>String</description></item>
/// <item><term>Label</term><description>key (multiclass; apply MapValueToKey) or Boolean (binary)</description></item>
/// <item><term>Example weight (optional)</term><description>Single ≥ 0, named by <see cref="MemoryFormerTextClassificationOptions.ExampleWeightColumnName"/></description></item>
/// <item><term>Score</term><description>multiclass: vector of Single class probabilities with SlotNames; binary: Single margin</description></item>
/// <item><term>Probability</term><description>binary only: Single, P(true)</description></item>
/// <item><term>PredictedLabel</term><description>multiclass: key with the label's KeyValues (text or numbers); binary: Boolean</description></item>
/// </list>
/// <para><b>Trainer characteristics</b>: machine learning task multiclass or binary classification; needs
/// normalization no; needs caching no (rows are read into memory once); required NuGet besides ML.NET
/// Microsoft.ML.MemoryFormer (TorchSharp-cpu or a CUDA backend). The encoder attends bidirectionally with padded
/// positions masked; a text longer than one window is read as up to <c>MaxWindowsPerRow</c> windows whose logits are
/// averaged, in training and in scoring; every epoch can be validated on a whole validation set, with early stopping on
/// its accuracy, and a softmax temperature is then fitted on it (<c>CalibrateTemperature</c>). The
/// device follows <see cref="MLContext.GpuDeviceId"/> and <see cref="MLContext.FallbackToCpu"/>; a failed or cancelled Fit
/// disposes everything it built.</para>
/// </remarks>
public sealed class MemoryFormerTextClassificationTrainer : IEstimator<MemoryFormerTextClassificationTransformer>
{
    private readonly MemoryFormerTextClassificationOptions options;
    private readonly SupervisedTrainerCore<LabelledTexts> core;

    internal MemoryFormerTextClassificationTrainer(IHostEnvironment env, PredictionKind kind, MemoryFormerTextClassificationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
        core = new SupervisedTrainerCore<LabelledTexts>(env, nameof(MemoryFormerTextClassificationTrainer), kind, options,
            options.LabelColumnName, (data, label) => LabelledTextReader.Read(data, Texts, label, options.ExampleWeightColumnName));
    }

    private TextColumns Texts => new(options.TextColumnName, options.SecondTextColumnName);

    /// <summary>Reads the rows into memory, trains the encoder and returns the scoring transformer.</summary>
    public MemoryFormerTextClassificationTransformer Fit(IDataView input)
    {
        using var torchScope = TorchSharp.torch.NewDisposeScope();               // temporaries stay reachable (Runtime/TorchScope.cs)
        var (label, train, validation, seed) = core.Read(input);
        using var channel = core.Host.Start("Training");
        var log = options.LogTo(channel);
        var settings = options.OutlierSet is { } outliers ? options.ToSettings() with { OutlierTexts = ReadOutliers(outliers) } : options.ToSettings();
        var (model, result) = TextClassifierTraining.Fit(settings, train, validation, label.Classes, seed, core.Device,
            (stepsPerEpoch, validated) => options.ToTrainingOptions(seed, stepsPerEpoch, validated), log, options.Progress,
            core.IsCanceled, options.CancellationToken);
        log($"Trained {result.Steps} steps in {result.Elapsed.TotalSeconds:F1} s" +
            (result.BestValidationMetric is { } accuracy ? $", best validation accuracy {accuracy:P2}" : "") +
            (result.StoppedEarly ? " (stopped early)" : "") + ".");
        return new MemoryFormerTextClassificationTransformer(model, core.Kind, Texts, label,
            new PredictionColumns(label, options.ScoreColumnName, options.PredictedLabelColumnName), options.BatchSize * 2, result);
    }

    private (string Text, string? Second)[] ReadOutliers(IDataView outliers)
    {
        try
        {
            return LabelledTextReader.ReadTexts(outliers, Texts);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new ArgumentException($"{nameof(MemoryFormerTextClassificationOptions.OutlierSet)}: {e.Message.Split(" (Parameter")[0]} " +
                "It needs the training rows' text column(s).", nameof(MemoryFormerTextClassificationOptions.OutlierSet), e);
        }
    }

    /// <summary>The input schema plus Score (and Probability) and PredictedLabel, as ML.NET's own classifiers.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Texts.CheckShape(inputSchema);
        WeightColumn.CheckShape(inputSchema, options.ExampleWeightColumnName);
        return core.OutputSchema(inputSchema, options.ScoreColumnName, options.PredictedLabelColumnName);
    }
}
