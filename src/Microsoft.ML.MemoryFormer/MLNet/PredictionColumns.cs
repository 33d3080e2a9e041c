using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The output columns of a MemoryFormer predictor, named and annotated exactly as ML.NET's own trainers, so
/// <c>mlContext.*.Evaluate</c>, <c>MapKeyToValue</c> and PredictionEngine work unchanged:
/// multiclass Score (vector of probabilities, SlotNames) + PredictedLabel (key with KeyValues); binary Score (margin),
/// Probability and PredictedLabel (bool); regression Score. Every column carries ScoreColumnKind and ScoreValueKind.
/// </summary>
/// <param name="Label">The label the model was trained on (task, classes, class names).</param>
/// <param name="ScoreColumnName">Name of the Score column.</param>
/// <param name="PredictedLabelColumnName">Name of the PredictedLabel column.</param>
internal sealed record PredictionColumns(LabelColumn Label, string ScoreColumnName, string PredictedLabelColumnName)
{
    private const string ProbabilityColumnName = "Probability";

    private string KindName => Label.Kind.ToString();

    /// <summary>The columns appended to the input schema, with their annotations.</summary>
    public DataViewSchema.DetachedColumn[] Columns()
    {
        int classes = Label.Classes;
        return Label.Kind switch
        {
            PredictionKind.MulticlassClassification =>
            [
                new(ScoreColumnName, new VectorDataViewType(NumberDataViewType.Single, classes), Annotate("Score", slotNames: true)),
                new(PredictedLabelColumnName, new KeyDataViewType(typeof(uint), classes), Annotate("PredictedLabel", keyValues: true)),
            ],
            PredictionKind.BinaryClassification =>
            [
                new(ScoreColumnName, NumberDataViewType.Single, Annotate("Score")),
                new(ProbabilityColumnName, NumberDataViewType.Single, Annotate("Probability")),
                new(PredictedLabelColumnName, BooleanDataViewType.Instance, Annotate("PredictedLabel")),
            ],
            _ => [new(ScoreColumnName, NumberDataViewType.Single, Annotate("Score"))],
        };
    }

    /// <summary>The same columns as <see cref="SchemaShape.Column"/>s, for an estimator's <c>GetOutputSchema</c>.</summary>
    public IEnumerable<SchemaShape.Column> Shape() => Columns().Select(c => MLNetInternals.NewColumn(c.Name,
        c.Type is VectorDataViewType ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.Scalar,
        c.Type switch { VectorDataViewType v => v.ItemType, KeyDataViewType => NumberDataViewType.UInt32, var t => t }, c.Type is KeyDataViewType,
        MLNetInternals.ShapeOf(c.Annotations)));

    /// <summary>
    /// Column values of scored rows from the model's log-probabilities [rows][classes] (or raw values for regression):
    /// one array per column of <see cref="Columns"/>, one element per row.
    /// </summary>
    public Array[] Values(float[][] outputs) => Label.Kind switch
    {
        PredictionKind.MulticlassClassification =>
        [
            outputs.Select(lp => new VBuffer<float>(lp.Length, lp.Select(MathF.Exp).ToArray())).ToArray(),
            outputs.Select(lp => (uint)(Array.IndexOf(lp, lp.Max()) + 1)).ToArray(),
        ],
        PredictionKind.BinaryClassification =>
        [
            outputs.Select(lp => lp[1] - lp[0]).ToArray(),
            outputs.Select(lp => MathF.Exp(lp[1])).ToArray(),
            outputs.Select(lp => lp[1] > lp[0]).ToArray(),
        ],
        _ => [outputs.Select(o => o[0]).ToArray()],
    };

    private DataViewSchema.Annotations Annotate(string valueKind, bool slotNames = false, bool keyValues = false)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        if ((slotNames || keyValues) && Label.ClassNames is { } names)
        {
            var type = new VectorDataViewType(TextDataViewType.Instance, names.Length);
            ValueGetter<VBuffer<ReadOnlyMemory<char>>> getter = (ref VBuffer<ReadOnlyMemory<char>> value) =>
                value = new VBuffer<ReadOnlyMemory<char>>(names.Length, names.Select(n => n.AsMemory()).ToArray());
            builder.Add(slotNames ? "SlotNames" : "KeyValues", type, getter);
        }
        builder.Add("ScoreColumnKind", TextDataViewType.Instance, Text(KindName));
        builder.Add("ScoreValueKind", TextDataViewType.Instance, Text(valueKind));
        return builder.ToAnnotations();
    }

    private static ValueGetter<ReadOnlyMemory<char>> Text(string value) => (ref ReadOnlyMemory<char> v) => v = value.AsMemory();
}
