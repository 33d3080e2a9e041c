namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// Rows of a feature vector column read into memory: features row-major [N, F] (NaN = missing) and one label per
/// row (the value for regression, the 0-based class for classification; binary false = 0, true = 1).
/// </summary>
/// <param name="Features">N·F values, row-major.</param>
/// <param name="Labels">N labels.</param>
/// <param name="FeatureCount">F.</param>
/// <param name="Skipped">Rows left out because their label was missing.</param>
/// <param name="Weights">N example weights (finite, ≥ 0) from <c>ExampleWeightColumnName</c>; null when every row counts once.</param>
internal sealed record TabularData(float[] Features, float[] Labels, int FeatureCount, int Skipped, float[]? Weights = null) : ILabelledData<TabularData>
{
    /// <summary>N, the number of rows.</summary>
    public int Rows => Labels.Length;

    /// <inheritdoc/>
    public int Count => Labels.Length;

    /// <inheritdoc/>
    public long ClassOf(int row) => (long)Labels[row];

    /// <inheritdoc/>
    public TabularData Subset(int[] rows)
    {
        int f = FeatureCount;
        var features = new float[rows.Length * f];
        for (int i = 0; i < rows.Length; i++) Features.AsSpan(rows[i] * f, f).CopyTo(features.AsSpan(i * f));
        return this with { Features = features, Labels = rows.Select(r => Labels[r]).ToArray(), Weights = Weights is { } w ? rows.Select(r => w[r]).ToArray() : null };
    }
}
