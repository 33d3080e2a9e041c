using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>The text column (and optional second text column, for sentence pairs) a text model reads.</summary>
/// <param name="Text">Name of the text column.</param>
/// <param name="Second">Name of the second text column, or null.</param>
internal sealed record TextColumns(string Text, string? Second)
{
    /// <summary>The columns in <paramref name="schema"/>; throws naming a missing or non-text column.</summary>
    public IReadOnlyList<DataViewSchema.Column> In(DataViewSchema schema) =>
        Names.Select(name => schema.GetColumnOrNull(name) switch
        {
            null => throw new ArgumentOutOfRangeException(nameof(schema),
                $"The text column '{name}' is not in the data (columns: {string.Join(", ", schema.Select(c => c.Name))})."),
            { Type: TextDataViewType } column => column,
            { Type: var type } => throw new ArgumentOutOfRangeException(nameof(schema),
                $"The text column '{name}' is {type}; it must be a scalar String (Text) column."),
        }).ToArray();

    /// <summary>Checks the columns in a schema shape (for <c>GetOutputSchema</c>).</summary>
    public void CheckShape(SchemaShape shape)
    {
        foreach (var name in Names)
        {
            var found = shape.Where(c => c.Name == name).ToArray();
            if (found.Length == 0)
                throw new ArgumentOutOfRangeException(nameof(shape), $"The text column '{name}' is not in the data.");
            var column = found[^1];
            if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.ItemType is not TextDataViewType)
                throw new ArgumentOutOfRangeException(nameof(shape), $"The text column '{name}' must be a scalar String (Text) column.");
        }
    }

    /// <summary>A reader of the texts of <paramref name="row"/>'s current position.</summary>
    public Func<(string Text, string? Second)> Reader(DataViewRow row)
    {
        var text = row.GetGetter<ReadOnlyMemory<char>>(row.Schema[Text]);
        var second = Second is null ? null : row.GetGetter<ReadOnlyMemory<char>>(row.Schema[Second]);
        ReadOnlyMemory<char> a = default, b = default;
        return () =>
        {
            text(ref a);
            if (second is null) return (a.ToString(), null);
            second(ref b);
            return (a.ToString(), b.ToString());
        };
    }

    private IEnumerable<string> Names => Second is null ? [Text] : [Text, Second];
}
