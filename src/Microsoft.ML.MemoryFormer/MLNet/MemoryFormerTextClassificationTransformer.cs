using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// A fitted MemoryFormer text classifier. <see cref="Transform"/> scores rows in batches; PredictionEngine scores one
/// row at a time; <c>mlContext.Model.Save/Load</c> round-trip it (any MLContext,
/// in any process, loads it with no registration call); a loaded model goes
/// to the loading MLContext's device (<see cref="MLContext.GpuDeviceId"/>, <see cref="MLContext.FallbackToCpu"/>).
/// </summary>
public sealed class MemoryFormerTextClassificationTransformer : ITransformer, IDisposable,
    IModelLoadable<MemoryFormerTextClassificationTransformer>
{
    private const string PredictorEntry = "predictor.json";

    private sealed record PredictorSettings(PredictionKind Kind, string Text, string? Second, string Label, int Classes,
        string[]? ClassNames, string Score, string PredictedLabel, int BatchSize,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ClassValueKind = null);

    private static readonly ModelSignatureInfo SignatureInfo =
        ModelSignatureInfo.For(typeof(MemoryFormerTextClassificationTransformer), "MFTXTCLS", "MFTextClassifier");

    private readonly TextClassifierModel model;
    private readonly PredictionKind kind;
    private readonly TextColumns texts;
    private readonly LabelColumn label;
    private readonly PredictionColumns columns;
    private readonly int batchSize;

    internal MemoryFormerTextClassificationTransformer(TextClassifierModel model, PredictionKind kind, TextColumns texts,
        LabelColumn label, PredictionColumns columns, int batchSize, TrainingResult? trainingResult)
    {
        (this.model, this.kind, this.texts, this.label, this.columns, this.batchSize) = (model, kind, texts, label, columns, batchSize);
        TrainingResult = trainingResult;
    }

    static ModelSignatureInfo IModelLoadable<MemoryFormerTextClassificationTransformer>.Signature => SignatureInfo;

    /// <summary>How training went (steps, time, best validation accuracy); null for a model loaded from a file.</summary>
    public TrainingResult? TrainingResult { get; }

    /// <summary>Number of classes the model predicts.</summary>
    public int ClassCount => model.Classes;

    /// <summary>The class names (the label's KeyValues) in key order; null for binary classification.</summary>
    public IReadOnlyList<string>? ClassNames => label.ClassNames;

    internal TextClassifierModel Model => model;

    /// <summary>
    /// Opts batched CPU scoring into lower-precision weights: <see cref="Configuration.InferencePrecision.BFloat16"/> gathers from
    /// bf16 copies of the Memory Layer tables (fp32 activations and accumulation);
    /// <see cref="Configuration.InferencePrecision.Float32"/> returns to the fp32 results exactly; Int8 is not implemented for
    /// scoring. Inference only, not saved; the accuracy cost is measured in docs/benchmarks.md. See
    /// <see cref="TextClassifierModel.UseInferencePrecision"/>.
    /// </summary>
    /// <exception cref="NotSupportedException"><see cref="Configuration.InferencePrecision.Int8"/>.</exception>
    public void UseInferencePrecision(Configuration.InferencePrecision precision) => model.UseInferencePrecision(precision);

    /// <summary>The precision batched scoring computes in (<see cref="UseInferencePrecision"/>).</summary>
    public Configuration.InferencePrecision InferencePrecision => model.InferencePrecision;

    /// <summary>
    /// Explains one prediction by leave-one-out occlusion: the row is scored as <c>Transform</c> scores it and once with each
    /// word left out, in one batched call, and each word's importance is how much the class's probability falls without it.
    /// A word is a run of non-white-space characters. Deterministic; costs one scoring call of up to
    /// <paramref name="maxWords"/> + 1 rows (the first <paramref name="maxWords"/> words are explained, those of
    /// <paramref name="text"/> first; words the model does not read, beyond its <c>MaxWindowsPerRow</c> windows, get 0).
    /// </summary>
    /// <param name="text">The row's text.</param>
    /// <param name="secondText">The row's second text, for a model trained on sentence pairs; null otherwise.</param>
    /// <param name="classIndex">The class to explain (0-based; for binary classification 1 is true); null explains the
    /// predicted class.</param>
    /// <param name="maxWords">Most words explained (≥ 1).</param>
    /// <returns>The class, its probability and the words' importance.</returns>
    /// <exception cref="ArgumentException">A second text for a model trained on single texts, or none for a model trained on
    /// pairs; a class index outside the model's classes; <paramref name="maxWords"/> below 1.</exception>
    public TextExplanation Explain(string text, string? secondText = null, int? classIndex = null, int maxWords = 256)
    {
        ArgumentNullException.ThrowIfNull(text);
        if ((secondText is null) != (texts.Second is null))
            throw new ArgumentException(texts.Second is null
                ? $"This model was trained on one text column ('{texts.Text}'); pass no second text."
                : $"This model was trained on text pairs ('{texts.Text}', '{texts.Second}'); pass the second text too.", nameof(secondText));
        var result = TextOcclusion.Explain(model, text, secondText, classIndex, maxWords);
        return new TextExplanation(result.Class, label.ClassName(result.Class), result.Probability, result.Words.Select(w => new WordImportance(
            (w.Word.InSecond ? secondText! : text).Substring(w.Word.Start, w.Word.Length), w.Word.Start, w.Word.InSecond, w.Importance)).ToArray());
    }

    /// <summary>The task: binary or multiclass classification (read by the ONNX export).</summary>
    internal PredictionKind Kind => kind;

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Mapper(inputSchema).OutputSchema;

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Mapper(inputSchema);

    /// <summary>Appends the prediction columns; rows are scored lazily, at least 256 at a time (their windows sorted by length
    /// into batches padded only to their own longest window).</summary>
    public IDataView Transform(IDataView input) => new BatchScoringDataView(input, Mapper(input.Schema));

    void ICanSaveModel.Save(ModelSaveContext ctx) => model.ToArchive()
        .SetText(PredictorEntry, JsonSerializer.Serialize(new PredictorSettings(kind, texts.Text, texts.Second, label.Name,
            label.Classes, label.ClassNames, columns.ScoreColumnName, columns.PredictedLabelColumnName, batchSize, label.ClassValueKind)))
        .SaveTo(ctx, SignatureInfo);

    static MemoryFormerTextClassificationTransformer IModelLoadable<MemoryFormerTextClassificationTransformer>.Create(
        IHostEnvironment env, object modelLoadContext)
    {
        var archive = ModelArchive.LoadFrom(modelLoadContext, SignatureInfo);
        var s = archive.GetJson(PredictorEntry, json => JsonSerializer.Deserialize<PredictorSettings>(json) is { } read
            && Enum.IsDefined(read.Kind) && read.Classes >= 1 && read.BatchSize >= 1 && (read.ClassNames is null || read.ClassNames.Length == read.Classes)
            && !string.IsNullOrEmpty(read.Text) && !string.IsNullOrEmpty(read.Score) && !string.IsNullOrEmpty(read.PredictedLabel)
            && (read.ClassValueKind is null || LabelColumn.KeyValueTypes.ContainsKey(read.ClassValueKind))
            ? read : throw new ArgumentException("the task must be known, classes and batch size positive, one name per class, the " +
                "class value kind known and the column names set."));
        var label = new LabelColumn(s.Label, s.Kind, s.Classes, s.ClassNames, s.ClassValueKind);
        return new MemoryFormerTextClassificationTransformer(TextClassifierModel.FromArchive(archive, MLContextDevice.Of(env)),
            s.Kind, new TextColumns(s.Text, s.Second), label, new PredictionColumns(label, s.Score, s.PredictedLabel), s.BatchSize, null);
    }

    /// <summary>Frees the model's tensors.</summary>
    public void Dispose() => model.Dispose();

    private ScoringMapper Mapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        label.CheckSameClasses(inputSchema);
        return new ScoringMapper(new TextClassificationScorer(model, texts, columns, inputSchema, batchSize), inputSchema);
    }
}
