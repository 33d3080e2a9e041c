using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The output columns ML.NET's own trainers append for each task, with the annotations its evaluators and
/// <c>MapKeyToValue</c> read (docs/platform-notes §3): regression Score; binary Score, Probability, PredictedLabel
/// (bool); multiclass Score (probabilities with SlotNames) and PredictedLabel (key with KeyValues).
/// </summary>
internal static class PredictionColumns
{
    /// <summary>The columns appended for <paramref name="kind"/>; <paramref name="classNames"/> only for multiclass.</summary>
    public static DataViewSchema.DetachedColumn[] For(TabularTaskKind kind, IReadOnlyList<string> classNames) => kind switch
    {
        TabularTaskKind.Regression => [new("Score", NumberDataViewType.Single, Kinds("Regression", "Score"))],
        TabularTaskKind.BinaryClassification =>
        [
            new("Score", NumberDataViewType.Single, Kinds("BinaryClassification", "Score")),
            new("Probability", NumberDataViewType.Single, Kinds("BinaryClassification", "Probability", normalized: true)),
            new("PredictedLabel", BooleanDataViewType.Instance, Kinds("BinaryClassification", "PredictedLabel")),
        ],
        _ =>
        [
            new("Score", new VectorDataViewType(NumberDataViewType.Single, classNames.Count),
                Kinds("MulticlassClassification", "Score", slotNames: classNames)),
            new("PredictedLabel", new KeyDataViewType(typeof(uint), classNames.Count), KeyValues(classNames)),
        ],
    };

    /// <summary>The same columns as <see cref="SchemaShape.Column"/>s, for an estimator's <c>GetOutputSchema</c>.</summary>
    public static IEnumerable<SchemaShape.Column> Shapes(TabularTaskKind kind) =>
        For(kind, ["a", "b"]).Select(c => MLNetInternals.NewColumn(c.Name,
            c.Type is VectorDataViewType ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.Scalar,
            c.Type switch { VectorDataViewType v => v.ItemType, KeyDataViewType => NumberDataViewType.UInt32, var t => t }, c.Type is KeyDataViewType, MLNetInternals.ShapeOf(c.Annotations)));

    private static DataViewSchema.Annotations Kinds(string columnKind, string valueKind, bool normalized = false,
        IReadOnlyList<string>? slotNames = null)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        if (slotNames is not null) AddNames(builder, "SlotNames", slotNames);
        AddText(builder, "ScoreColumnKind", columnKind);
        AddText(builder, "ScoreValueKind", valueKind);
        if (normalized) builder.Add("IsNormalized", BooleanDataViewType.Instance, (ref bool v) => v = true);
        return builder.ToAnnotations();
    }

    private static DataViewSchema.Annotations KeyValues(IReadOnlyList<string> classNames)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        AddNames(builder, "KeyValues", classNames);
        return builder.ToAnnotations();
    }

    private static void AddText(DataViewSchema.Annotations.Builder builder, string name, string text) =>
        builder.Add(name, TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = text.AsMemory());

    private static void AddNames(DataViewSchema.Annotations.Builder builder, string name, IReadOnlyList<string> names)
    {
        var values = names.Select(n => n.AsMemory()).ToArray();
        builder.Add(name, new VectorDataViewType(TextDataViewType.Instance, values.Length),
            (ref VBuffer<ReadOnlyMemory<char>> v) => new VBuffer<ReadOnlyMemory<char>>(values.Length, values).CopyTo(ref v));
    }
}
