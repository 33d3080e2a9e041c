namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>Text rows (a text and an optional second text) with their class index in [0, classes).</summary>
/// <param name="Rows">The texts; <c>Second</c> is null for single-text rows.</param>
/// <param name="Labels">Class index of each row.</param>
/// <param name="Weights">Example weights (finite, ≥ 0) from <c>ExampleWeightColumnName</c>; null when every row counts once.</param>
internal sealed record LabelledTexts(IReadOnlyList<(string Text, string? Second)> Rows, long[] Labels, float[]? Weights = null) : ILabelledData<LabelledTexts>
{
    /// <summary>Number of rows.</summary>
    public int Count => Rows.Count;

    /// <inheritdoc/>
    public long ClassOf(int row) => Labels[row];

    /// <inheritdoc/>
    public LabelledTexts Subset(int[] rows) => new(rows.Select(r => Rows[r]).ToArray(), rows.Select(r => Labels[r]).ToArray(),
        Weights is { } w ? rows.Select(r => w[r]).ToArray() : null);
}
