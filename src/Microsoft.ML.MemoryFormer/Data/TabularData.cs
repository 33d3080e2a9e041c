namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// Rows of a feature vector column read into memory: features row-major [N, F] (NaN = missing) and one label per
/// row (the value for regression, 0/1 for binary, the 0-based class for multiclass).
/// </summary>
/// <param name="Features">N·F values, row-major.</param>
/// <param name="Labels">N labels.</param>
/// <param name="FeatureCount">F.</param>
/// <param name="ClassNames">Class names of a multiclass label (from its KeyValues), empty otherwise.</param>
internal sealed record TabularData(float[] Features, float[] Labels, int FeatureCount, string[] ClassNames)
{
    /// <summary>N, the number of rows.</summary>
    public int Rows => Labels.Length;
}
