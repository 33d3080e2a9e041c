using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>Finds and reads a text column, with errors that name the column, the option and what was found instead.</summary>
internal static class TextColumn
{
    /// <summary>The column <paramref name="name"/> of <paramref name="schema"/>, checked to be scalar text.</summary>
    /// <param name="schema">Schema to search.</param>
    /// <param name="name">Column name.</param>
    /// <param name="option">The option that named it (for the message), e.g. <c>TextColumnName</c>.</param>
    public static DataViewSchema.Column Find(DataViewSchema schema, string name, string option)
    {
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(option,
            $"Column '{name}' ({option}) was not found; the data has: {string.Join(", ", schema.Select(c => $"'{c.Name}'"))}.");
        if (column.Type is not TextDataViewType)
            throw new ArgumentOutOfRangeException(option, $"Column '{name}' ({option}) must be text (String), but it is {column.Type}.");
        return column;
    }

    /// <summary>The same checks on a <see cref="SchemaShape"/> (estimator schema propagation).</summary>
    public static void Check(SchemaShape shape, string name, string option)
    {
        var matches = shape.Where(c => c.Name == name).ToList();
        if (matches.Count == 0)
            throw new ArgumentOutOfRangeException(option,
                $"Column '{name}' ({option}) was not found; the data has: {string.Join(", ", shape.Select(c => $"'{c.Name}'"))}.");
        var column = matches[^1];
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.ItemType is not TextDataViewType)
            throw new ArgumentOutOfRangeException(option, $"Column '{name}' ({option}) must be scalar text (String), but it is " +
                $"{(column.Kind == SchemaShape.Column.VectorKind.Scalar ? "" : column.Kind + " of ")}{column.ItemType}.");
    }

    /// <summary>Every value of a text column, in row order (missing values become empty strings).</summary>
    /// <exception cref="ArgumentException">Every value is empty (or there are no rows), naming the column.</exception>
    public static List<string> ReadAll(IDataView data, string name, string option, CancellationToken cancellation = default)
    {
        var column = Find(data.Schema, name, option);
        var texts = new List<string>();
        using var cursor = data.GetRowCursor([column]);
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
        ReadOnlyMemory<char> value = default;
        while (cursor.MoveNext())
        {
            cancellation.ThrowIfCancellationRequested();
            getter(ref value);
            texts.Add(value.ToString());
        }
        if (texts.All(string.IsNullOrEmpty))
            throw new ArgumentException($"Column '{name}' ({option}) holds no text: {texts.Count} rows, all empty.", nameof(data));
        return texts;
    }
}
