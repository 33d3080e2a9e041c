using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;

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
        if (slotNames && Label.ClassNames is { } names)
            AddValues(builder, "SlotNames", TextDataViewType.Instance, names, n => n.AsMemory());
        if (keyValues && Label.ClassNames is { } values)
            AddKeyValues(builder, values);
        builder.Add("ScoreColumnKind", TextDataViewType.Instance, Text(KindName));
        builder.Add("ScoreValueKind", TextDataViewType.Instance, Text(valueKind));
        return builder.ToAnnotations();
    }

    /// <summary>The label's KeyValues in their own item type (text, a number type or Boolean), so that
    /// <c>MapKeyToValue("PredictedLabel")</c> gives back values of the label's type.</summary>
    private void AddKeyValues(DataViewSchema.Annotations.Builder builder, string[] names)
    {
        var type = Label.ClassValueType;
        var c = CultureInfo.InvariantCulture;
        switch (Label.ClassValueKind)
        {
            case null: AddValues(builder, "KeyValues", type, names, n => n.AsMemory()); break;
            case "Single": AddValues(builder, "KeyValues", type, names, n => float.Parse(n, c)); break;
            case "Double": AddValues(builder, "KeyValues", type, names, n => double.Parse(n, c)); break;
            case "SByte": AddValues(builder, "KeyValues", type, names, n => sbyte.Parse(n, c)); break;
            case "Byte": AddValues(builder, "KeyValues", type, names, n => byte.Parse(n, c)); break;
            case "Int16": AddValues(builder, "KeyValues", type, names, n => short.Parse(n, c)); break;
            case "UInt16": AddValues(builder, "KeyValues", type, names, n => ushort.Parse(n, c)); break;
            case "Int32": AddValues(builder, "KeyValues", type, names, n => int.Parse(n, c)); break;
            case "UInt32": AddValues(builder, "KeyValues", type, names, n => uint.Parse(n, c)); break;
            case "Int64": AddValues(builder, "KeyValues", type, names, n => long.Parse(n, c)); break;
            case "UInt64": AddValues(builder, "KeyValues", type, names, n => ulong.Parse(n, c)); break;
            case "Boolean": AddValues(builder, "KeyValues", type, names, bool.Parse); break;
            default: throw new InvalidDataException($"The label's class value kind '{Label.ClassValueKind}' is not one of " +
                $"Text, {string.Join(", ", LabelColumn.KeyValueTypes.Keys)}.");
        }
    }

    /// <summary>Adds a vector annotation of <paramref name="names"/>, converted lazily (a schema shape never reads it).</summary>
    private static void AddValues<T>(DataViewSchema.Annotations.Builder builder, string name, DataViewType itemType,
        string[] names, Func<string, T> convert)
    {
        ValueGetter<VBuffer<T>> getter = (ref VBuffer<T> value) =>
            value = new VBuffer<T>(names.Length, names.Select(convert).ToArray());
        builder.Add(name, new VectorDataViewType((PrimitiveDataViewType)itemType, names.Length), getter);
    }

    private static ValueGetter<ReadOnlyMemory<char>> Text(string value) => (ref ReadOnlyMemory<char> v) => v = value.AsMemory();
}
