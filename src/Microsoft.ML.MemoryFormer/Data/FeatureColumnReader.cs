using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// Reads a known-size Single vector column (ML.NET's Features) and a label column into <see cref="TabularData"/>,
/// with errors that name the column, what it is and what is expected. NaN features are kept (missing values);
/// infinite ones are refused. Rows whose label is missing (NaN value, key 0) are skipped, as ML.NET's trainers do.
/// </summary>
internal static class FeatureColumnReader
{
    /// <summary>Checks the feature column and returns its slot count F.</summary>
    public static int CheckFeatures(DataViewSchema schema, string name)
    {
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(schema),
            $"Feature column '{name}' was not found. Expected a known-size vector of Single (float), e.g. made by " +
            $"mlContext.Transforms.Concatenate(\"{name}\", ...).");
        if (column.Type is not VectorDataViewType vector || vector.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(schema),
                $"Feature column '{name}' has type {column.Type}; expected a known-size vector of Single (float). " +
                "Convert it with mlContext.Transforms.Conversion.ConvertType(..., DataKind.Single) and " +
                "mlContext.Transforms.Concatenate.");
        if (!vector.IsKnownSize)
            throw new ArgumentOutOfRangeException(nameof(schema),
                $"Feature column '{name}' is a variable-length vector of Single; expected a known-size vector of " +
                "Single (float), the same length on every row (give the loader column a size, or Concatenate scalars).");
        return vector.Size;
    }

    /// <summary>Checks that the label column suits <paramref name="kind"/> and returns it.</summary>
    public static DataViewSchema.Column CheckLabel(DataViewSchema schema, string name, TabularTaskKind kind)
    {
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(schema),
            $"Label column '{name}' was not found; expected {ExpectedLabel(kind)}.");
        bool ok = kind switch
        {
            TabularTaskKind.Regression => column.Type == NumberDataViewType.Single,
            TabularTaskKind.BinaryClassification => column.Type == BooleanDataViewType.Instance,
            _ => column.Type is KeyDataViewType { RawType: var raw } key && raw == typeof(uint) && key.Count >= 2,
        };
        if (!ok)
            throw new ArgumentOutOfRangeException(nameof(schema),
                $"Label column '{name}' has type {column.Type}; expected {ExpectedLabel(kind)}.");
        return column;
    }

    /// <summary>Refuses infinite values; NaN (missing) is allowed.</summary>
    public static void CheckFinite(ReadOnlySpan<float> values, string column, long row)
    {
        for (int i = 0; i < values.Length; i++)
            if (float.IsInfinity(values[i]))
                throw new InvalidOperationException(
                    $"Feature column '{column}' holds {values[i]} at row {row}, slot {i}; expected finite Single values " +
                    "(NaN marks a missing value). Clip or replace infinite values before training or scoring.");
    }

    /// <summary>Reads every row of <paramref name="data"/> into memory.</summary>
    public static TabularData Read(IDataView data, string featureColumn, string labelColumn, TabularTaskKind kind)
    {
        int f = CheckFeatures(data.Schema, featureColumn);
        var label = CheckLabel(data.Schema, labelColumn, kind);
        var features = new List<float>();
        var labels = new List<float>();
        var row = new float[f];
        var featureCol = data.Schema[featureColumn];
        using var cursor = data.GetRowCursor([featureCol, label]);
        var getFeatures = cursor.GetGetter<VBuffer<float>>(featureCol);
        var getLabel = LabelGetter(cursor, label, kind);
        VBuffer<float> buffer = default;
        long position = 0;
        while (cursor.MoveNext())
        {
            float y = getLabel();
            getFeatures(ref buffer);
            Dense(buffer, row, featureColumn, position);
            CheckFinite(row, featureColumn, position++);
            if (float.IsNaN(y)) continue;
            features.AddRange(row);
            labels.Add(y);
        }
        if (labels.Count == 0)
            throw new InvalidOperationException($"No training rows: the data is empty or every '{labelColumn}' is missing.");
        return new TabularData([.. features], [.. labels], f, ClassNames(label, kind));
    }

    /// <summary>Copies a (possibly sparse) vector into <paramref name="row"/>, checking its length.</summary>
    public static void Dense(in VBuffer<float> buffer, Span<float> row, string column, long position)
    {
        if (buffer.Length != row.Length)
            throw new InvalidOperationException(
                $"Feature column '{column}' has {buffer.Length} slots at row {position}; expected {row.Length}.");
        buffer.CopyTo(row);
    }

    private static Func<float> LabelGetter(DataViewRow cursor, DataViewSchema.Column label, TabularTaskKind kind)
    {
        switch (kind)
        {
            case TabularTaskKind.Regression:
                var single = cursor.GetGetter<float>(label);
                return () => { float v = 0; single(ref v); return v; };
            case TabularTaskKind.BinaryClassification:
                var flag = cursor.GetGetter<bool>(label);
                return () => { bool v = false; flag(ref v); return v ? 1f : 0f; };
            default:
                var key = cursor.GetGetter<uint>(label);
                return () => { uint v = 0; key(ref v); return v == 0 ? float.NaN : v - 1; };
        }
    }

    private static string[] ClassNames(DataViewSchema.Column label, TabularTaskKind kind)
    {
        if (kind != TabularTaskKind.MulticlassClassification) return [];
        int count = (int)((KeyDataViewType)label.Type).Count;
        var names = Enumerable.Range(1, count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        if (label.Annotations.Schema.GetColumnOrNull(AnnotationUtilsKeyValues) is { Type: VectorDataViewType { ItemType: TextDataViewType } })
        {
            VBuffer<ReadOnlyMemory<char>> values = default;
            label.Annotations.GetValue(AnnotationUtilsKeyValues, ref values);
            var dense = values.DenseValues().Select(v => v.ToString()).ToArray();
            if (dense.Length == count) names = dense;
        }
        return names;
    }

    private const string AnnotationUtilsKeyValues = "KeyValues";

    private static string ExpectedLabel(TabularTaskKind kind) => kind switch
    {
        TabularTaskKind.Regression => "Single (float), the value to predict",
        TabularTaskKind.BinaryClassification => "Boolean (bool); map other types with mlContext.Transforms.Conversion or CustomMapping",
        _ => "a key type over UInt32 with at least 2 classes; apply mlContext.Transforms.Conversion.MapValueToKey to the label first",
    };
}
