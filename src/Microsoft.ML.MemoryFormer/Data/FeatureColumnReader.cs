using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// Reads a known-size Single vector column (ML.NET's Features) and a label column into <see cref="TabularData"/>,
/// with errors that name the column, what it is and what is expected (the label through <see cref="LabelColumn"/>).
/// NaN features are kept (missing values); infinite ones are refused. Rows whose label is missing (NaN value, key 0)
/// are skipped, as ML.NET's trainers do.
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

    /// <summary>Refuses infinite values; NaN (missing) is allowed.</summary>
    public static void CheckFinite(ReadOnlySpan<float> values, string column, long row)
    {
        for (int i = 0; i < values.Length; i++)
            if (float.IsInfinity(values[i]))
                throw new InvalidOperationException(
                    $"Feature column '{column}' holds {values[i]} at row {row}, slot {i}; expected finite Single values " +
                    "(NaN marks a missing value). Clip or replace infinite values before training or scoring.");
    }

    /// <summary>Reads every row of <paramref name="data"/> into memory, with each row's weight from
    /// <paramref name="weightColumn"/> when it is given (rows whose label is missing are skipped with their weight).</summary>
    public static TabularData Read(IDataView data, string featureColumn, LabelColumn label, string? weightColumn = null)
    {
        int f = CheckFeatures(data.Schema, featureColumn);
        if (weightColumn is not null) WeightColumn.Check(data.Schema, weightColumn);
        var features = new List<float>();
        var labels = new List<float>();
        var weights = weightColumn is null ? null : new List<float>();
        var row = new float[f];
        var featureCol = data.Schema[featureColumn];
        using var cursor = data.GetRowCursor(weightColumn is null ? [featureCol, data.Schema[label.Name]]
            : [featureCol, data.Schema[label.Name], data.Schema[weightColumn]]);
        var getFeatures = cursor.GetGetter<VBuffer<float>>(featureCol);
        var getLabel = LabelGetter(cursor, label);
        var getWeight = weightColumn is null ? null : WeightColumn.Reader(cursor, weightColumn);
        VBuffer<float> buffer = default;
        int skipped = 0;
        while (cursor.MoveNext())
        {
            getFeatures(ref buffer);
            Dense(buffer, row, featureColumn, cursor.Position);
            CheckFinite(row, featureColumn, cursor.Position);
            float y = getLabel();
            if (float.IsNaN(y)) { skipped++; continue; }
            if (float.IsInfinity(y))
                throw new InvalidOperationException($"Label column '{label.Name}' holds {y} at row {cursor.Position}; expected finite " +
                    "values (NaN marks a missing label: that row is skipped). Clip or remove infinite labels before training.");
            features.AddRange(row);
            labels.Add(y);
            if (getWeight is not null) weights!.Add(getWeight());
        }
        return new TabularData([.. features], [.. labels], f, skipped, weights is null ? null : WeightColumn.Finish(weights, weightColumn!));
    }

    /// <summary>Copies a (possibly sparse) vector into <paramref name="row"/>, checking its length.</summary>
    public static void Dense(in VBuffer<float> buffer, Span<float> row, string column, long position)
    {
        if (buffer.Length != row.Length)
            throw new InvalidOperationException(
                $"Feature column '{column}' has {buffer.Length} slots at row {position}; expected {row.Length}.");
        buffer.CopyTo(row);
    }

    private static Func<float> LabelGetter(DataViewRow cursor, LabelColumn label)
    {
        if (label.Kind != PredictionKind.Regression)
        {
            var read = label.Reader(cursor);
            return () => read() is var c && c < 0 ? float.NaN : c;
        }
        var single = cursor.GetGetter<float>(cursor.Schema[label.Name]);
        return () => { float v = 0; single(ref v); return v; };
    }
}
