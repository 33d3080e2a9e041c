namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// Rows of a feature vector column read into memory: features row-major [N, F] (NaN = missing) and one label per
/// row (the value for regression, the 0-based class for classification; binary false = 0, true = 1).
/// </summary>
/// <param name="Features">N·F values, row-major.</param>
/// <param name="Labels">N labels.</param>
/// <param name="FeatureCount">F.</param>
/// <param name="Skipped">Rows left out because their label was missing.</param>
internal sealed record TabularData(float[] Features, float[] Labels, int FeatureCount, int Skipped)
{
    /// <summary>N, the number of rows.</summary>
    public int Rows => Labels.Length;
}
