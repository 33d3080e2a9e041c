using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// The optional example weight column of the supervised trainers (<c>ExampleWeightColumnName</c>): a scalar Single with a
/// finite weight ≥ 0 on every row and a positive one on at least one labelled row; errors name the column, the row and
/// the way out.
/// </summary>
internal static class WeightColumn
{
    /// <summary>Checks that <paramref name="name"/> is a Single column of <paramref name="schema"/>.</summary>
    public static void Check(DataViewSchema schema, string name)
    {
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(nameof(schema),
            $"Example weight column '{name}' was not found. Expected a Single (float) column with one weight ≥ 0 per row, " +
            "or leave ExampleWeightColumnName null to count every row once.");
        if (column.Type != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(schema),
                $"Example weight column '{name}' has type {column.Type}; expected Single (float). Convert it with " +
                "mlContext.Transforms.Conversion.ConvertType(..., DataKind.Single).");
    }

    /// <summary>The schema check of an estimator's <c>GetOutputSchema</c>: <paramref name="name"/>, when set, is a scalar Single.</summary>
    public static void CheckShape(SchemaShape inputSchema, string? name)
    {
        if (name is null) return;
        var column = inputSchema.LastOrDefault(c => c.Name == name);
        if (column.Name is null || column.Kind != SchemaShape.Column.VectorKind.Scalar || column.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Example weight column '{name}' " +
                (column.Name is null ? "was not found" : $"is a {column.Kind} of {column.ItemType}") + "; expected a scalar Single (float).");
    }

    /// <summary>Reads the current row's weight, refusing a negative or non-finite one.</summary>
    public static Func<float> Reader(DataViewRowCursor cursor, string name)
    {
        var getter = cursor.GetGetter<float>(cursor.Schema[name]);
        return () =>
        {
            float w = 0;
            getter(ref w);
            if (!float.IsFinite(w) || w < 0)
                throw new InvalidOperationException($"Example weight column '{name}' holds {w} at row {cursor.Position}; " +
                    "expected a finite weight ≥ 0 (0 leaves the row out of the training loss).");
            return w;
        };
    }

    /// <summary>The labelled rows' weights, refused when none is above 0.</summary>
    public static float[] Finish(List<float> weights, string name)
    {
        if (weights.Count > 0 && weights.Sum(w => (double)w) <= 0)
            throw new InvalidOperationException($"Example weight column '{name}' is 0 on every labelled row; " +
                "at least one row needs a positive weight.");
        return [.. weights];
    }
}
