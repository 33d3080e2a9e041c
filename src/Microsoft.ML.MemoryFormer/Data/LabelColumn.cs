using System.Globalization;
using System.Text.Json.Serialization;
using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// The label column of a supervised trainer: checks its type for the task (with the fix in the message), knows the
/// classes and their names, and reads each row's class index (−1 when the label is missing).
/// </summary>
/// <param name="Name">Column name.</param>
/// <param name="Kind">The task.</param>
/// <param name="Classes">Number of classes (2 for binary, the key count for multiclass, 1 for regression).</param>
/// <param name="ClassNames">The label's KeyValues as text (multiclass), else null; numbers are written in the
/// invariant culture, round-trip format.</param>
/// <param name="ClassValueKind">The item type of the KeyValues when they are not text (<c>Single</c>, <c>Int32</c>,
/// <c>Boolean</c>, ..., see <see cref="KeyValueTypes"/>), so the predicted label keeps them and
/// <c>MapKeyToValue</c> gives back values of the label's own type; null for text (and in models saved before it existed).</param>
internal sealed record LabelColumn(string Name, PredictionKind Kind, int Classes, string[]? ClassNames,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ClassValueKind = null)
{
    /// <summary>The KeyValues item types a label can carry besides text, by the name stored in <see cref="ClassValueKind"/>.</summary>
    public static IReadOnlyDictionary<string, DataViewType> KeyValueTypes { get; } = new Dictionary<string, DataViewType>
    {
        ["Single"] = NumberDataViewType.Single, ["Double"] = NumberDataViewType.Double,
        ["SByte"] = NumberDataViewType.SByte, ["Byte"] = NumberDataViewType.Byte,
        ["Int16"] = NumberDataViewType.Int16, ["UInt16"] = NumberDataViewType.UInt16,
        ["Int32"] = NumberDataViewType.Int32, ["UInt32"] = NumberDataViewType.UInt32,
        ["Int64"] = NumberDataViewType.Int64, ["UInt64"] = NumberDataViewType.UInt64,
        ["Boolean"] = BooleanDataViewType.Instance,
    };

    /// <summary>The item type of the class names: text, or the type named by <see cref="ClassValueKind"/>.</summary>
    [JsonIgnore]
    public DataViewType ClassValueType => ClassValueKind is null ? TextDataViewType.Instance : KeyValueTypes[ClassValueKind];

    /// <summary>The name <see cref="ClassValueKind"/> stores for KeyValues of <paramref name="itemType"/>: null for text,
    /// the type's name for a supported number or Boolean type; false when the type cannot be kept.</summary>
    public static bool TryKindOf(DataViewType itemType, out string? kind)
    {
        kind = itemType is TextDataViewType ? null : KeyValueTypes.FirstOrDefault(t => t.Value.Equals(itemType)).Key;
        return itemType is TextDataViewType || kind is not null;
    }

    /// <summary>Checks <paramref name="schema"/>'s column <paramref name="name"/> for <paramref name="kind"/>.</summary>
    public static LabelColumn Of(DataViewSchema schema, string name, PredictionKind kind)
    {
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(name),
            $"The label column '{name}' is not in the data (columns: {string.Join(", ", schema.Select(c => c.Name))}). Set labelColumnName.");
        return column.Type switch
        {
            KeyDataViewType key when kind == PredictionKind.MulticlassClassification && key.RawType == typeof(uint) =>
                WithKeyValues(name, kind, checked((int)key.Count), column),
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
            "for more than two classes use the multiclass catalog (mlContext.MulticlassClassification.Trainers.MemoryFormerTextClassification " +
            "or MemoryFormerTabular) with MapValueToKey.",
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
        CheckSameClasses(WithKeyValues(Name, Kind, (int)Math.Min(key.Count, int.MaxValue), column), "data");
    }

    /// <summary>The name of class <paramref name="classIndex"/> (0-based) as explanations report it: "True"/"False" for binary
    /// classification, the label's key value for multiclass (its 1-based key when the label has no KeyValues).</summary>
    public string ClassName(int classIndex) => Kind == PredictionKind.BinaryClassification ? (classIndex == 1 ? "True" : "False")
        : ClassNames is { } names ? names[classIndex] : (classIndex + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);

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

    private static LabelColumn WithKeyValues(string name, PredictionKind kind, int classes, DataViewSchema.Column column)
    {
        if (column.Annotations.Schema.GetColumnOrNull("KeyValues") is not { Type: VectorDataViewType { ItemType: var itemType } }
            || !TryKindOf(itemType, out var valueKind))
            return new LabelColumn(name, kind, classes, null);
        var names = itemType switch
        {
            TextDataViewType => Read<ReadOnlyMemory<char>>(column, v => v.ToString()),
            BooleanDataViewType => Read<bool>(column, v => v ? "True" : "False"),
            _ => ReadNumbers(column, itemType.RawType),
        };
        return new LabelColumn(name, kind, classes, names, valueKind);
    }

    private static string[] ReadNumbers(DataViewSchema.Column column, Type rawType) => rawType switch
    {
        _ when rawType == typeof(float) => Read<float>(column, v => v.ToString("R", CultureInfo.InvariantCulture)),
        _ when rawType == typeof(double) => Read<double>(column, v => v.ToString("R", CultureInfo.InvariantCulture)),
        _ when rawType == typeof(sbyte) => Read<sbyte>(column, v => v.ToString(CultureInfo.InvariantCulture)),
        _ when rawType == typeof(byte) => Read<byte>(column, v => v.ToString(CultureInfo.InvariantCulture)),
        _ when rawType == typeof(short) => Read<short>(column, v => v.ToString(CultureInfo.InvariantCulture)),
        _ when rawType == typeof(ushort) => Read<ushort>(column, v => v.ToString(CultureInfo.InvariantCulture)),
        _ when rawType == typeof(int) => Read<int>(column, v => v.ToString(CultureInfo.InvariantCulture)),
        _ when rawType == typeof(uint) => Read<uint>(column, v => v.ToString(CultureInfo.InvariantCulture)),
        _ when rawType == typeof(long) => Read<long>(column, v => v.ToString(CultureInfo.InvariantCulture)),
        _ => Read<ulong>(column, v => v.ToString(CultureInfo.InvariantCulture)),
    };

    private static string[] Read<T>(DataViewSchema.Column column, Func<T, string> format)
    {
        VBuffer<T> values = default;
        column.Annotations.GetValue("KeyValues", ref values);
        return values.DenseValues().Select(format).ToArray();
    }

    private static string Preview(string[]? names) =>
        names is null ? "no names" : string.Join(", ", names.Take(5)) + (names.Length > 5 ? ", ..." : "");
}
