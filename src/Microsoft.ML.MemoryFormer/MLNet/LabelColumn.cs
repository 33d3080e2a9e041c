using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The label column of a supervised trainer: checks its type for the task (with the fix in the message), knows the
/// classes and their names, and reads each row's class index (−1 when the label is missing).
/// </summary>
/// <param name="Name">Column name.</param>
/// <param name="Kind">The task.</param>
/// <param name="Classes">Number of classes (2 for binary, the key count for multiclass, 1 for regression).</param>
/// <param name="ClassNames">The label's KeyValues as text (multiclass), else null.</param>
internal sealed record LabelColumn(string Name, PredictionKind Kind, int Classes, string[]? ClassNames)
{
    /// <summary>Checks <paramref name="schema"/>'s column <paramref name="name"/> for <paramref name="kind"/>.</summary>
    public static LabelColumn Of(DataViewSchema schema, string name, PredictionKind kind)
    {
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(name),
            $"The label column '{name}' is not in the data (columns: {string.Join(", ", schema.Select(c => c.Name))}). Set labelColumnName.");
        return column.Type switch
        {
            KeyDataViewType key when kind == PredictionKind.MulticlassClassification && key.RawType == typeof(uint) =>
                new LabelColumn(name, kind, checked((int)key.Count), KeyNames(column)),
            BooleanDataViewType when kind == PredictionKind.BinaryClassification => new LabelColumn(name, kind, 2, null),
            NumberDataViewType number when kind == PredictionKind.Regression && number.RawType == typeof(float) =>
                new LabelColumn(name, kind, 1, null),
            var type => throw WrongType(name, type, kind),
        };
    }

    /// <summary>The error for a label column of the wrong type, with the fix.</summary>
    public static ArgumentOutOfRangeException WrongType(string name, DataViewType type, PredictionKind kind) => new(name, kind switch
    {
        PredictionKind.MulticlassClassification =>
            $"The label column '{name}' is {type}, but multiclass classification needs a key type. Apply " +
            $"mlContext.Transforms.Conversion.MapValueToKey(\"{name}\") before the trainer (and " +
            "MapKeyToValue(\"PredictedLabel\") after it to get the label values back).",
        PredictionKind.BinaryClassification =>
            $"The label column '{name}' is {type}, but binary classification needs a Boolean label. Load it as bool " +
            "(e.g. [LoadColumn(0)] public bool Label) or convert it (e.g. with mlContext.Transforms.CustomMapping); " +
            "for more than two classes use mlContext.MulticlassClassification.Trainers.MemoryFormer with MapValueToKey.",
        _ => $"The label column '{name}' is {type}, but regression needs a Single (float) label. Convert it with " +
            $"mlContext.Transforms.Conversion.ConvertType(\"{name}\", outputKind: DataKind.Single).",
    });

    /// <summary>A reader of the class index of <paramref name="row"/>'s current position: −1 for a missing label.</summary>
    public Func<long> Reader(DataViewRow row)
    {
        var column = row.Schema[Name];
        if (Kind == PredictionKind.MulticlassClassification)
        {
            var getter = row.GetGetter<uint>(column);
            uint key = 0;
            return () => { getter(ref key); return (long)key - 1; };
        }
        var flag = row.GetGetter<bool>(column);
        bool value = false;
        return () => { flag(ref value); return value ? 1 : 0; };
    }

    /// <summary>
    /// Throws when <paramref name="schema"/> has this label column with other classes than training had: rows scored
    /// against it would be counted under the wrong class names.
    /// </summary>
    public void CheckSameClasses(DataViewSchema schema)
    {
        if (Kind != PredictionKind.MulticlassClassification || schema.GetColumnOrNull(Name) is not { Type: KeyDataViewType key } column)
            return;
        CheckSameClasses(new LabelColumn(Name, Kind, (int)Math.Min(key.Count, int.MaxValue), KeyNames(column)), "data");
    }

    /// <summary>Throws when <paramref name="other"/> (the label of the <paramref name="what"/>) has other classes than this one.</summary>
    public void CheckSameClasses(LabelColumn other, string what)
    {
        if (Kind != PredictionKind.MulticlassClassification) return;
        var names = other.ClassNames;
        if (other.Classes != Classes || (ClassNames is not null && names is not null && !ClassNames.SequenceEqual(names)))
            throw new InvalidOperationException(
                $"The label column '{Name}' of the {what} has {other.Classes} classes [{Preview(names)}], but the model was trained on {Classes} " +
                $"[{Preview(ClassNames)}]: the data holds labels the model never saw, or its keys were mapped differently. Map the " +
                "evaluation data with the same fitted MapValueToKey transformer as the training data (fit it on data that " +
                "contains every label, e.g. before splitting).");
    }

    private static string[]? KeyNames(DataViewSchema.Column column)
    {
        if (column.Annotations.Schema.GetColumnOrNull("KeyValues") is not { Type: VectorDataViewType { ItemType: TextDataViewType } })
            return null;
        VBuffer<ReadOnlyMemory<char>> values = default;
        column.Annotations.GetValue("KeyValues", ref values);
        return values.DenseValues().Select(v => v.ToString()).ToArray();
    }

    private static string Preview(string[]? names) =>
        names is null ? "no names" : string.Join(", ", names.Take(5)) + (names.Length > 5 ? ", ..." : "");
}
