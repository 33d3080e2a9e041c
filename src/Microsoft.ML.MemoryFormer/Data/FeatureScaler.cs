namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// Per-slot standardisation (x − mean) / std learned on the training rows, ignoring NaN; NaN stays NaN so the
/// tokenizer can give it the missing-value embedding. Constant slots get std 1. Saved with the model, so callers
/// may feed raw or already-normalised features.
/// </summary>
/// <param name="Means">Mean of each slot.</param>
/// <param name="Stds">Standard deviation of each slot (1 where constant).</param>
internal sealed record FeatureScaler(float[] Means, float[] Stds)
{
    /// <summary>Learns the statistics of <paramref name="features"/> [N, F] row-major.</summary>
    public static FeatureScaler Fit(float[] features, int featureCount)
    {
        var sum = new double[featureCount];
        var squares = new double[featureCount];
        var counts = new long[featureCount];
        for (int i = 0; i < features.Length; i++)
        {
            float v = features[i];
            if (float.IsNaN(v)) continue;
            int slot = i % featureCount;
            sum[slot] += v;
            squares[slot] += (double)v * v;
            counts[slot]++;
        }
        var means = new float[featureCount];
        var stds = new float[featureCount];
        for (int s = 0; s < featureCount; s++)
        {
            double mean = counts[s] > 0 ? sum[s] / counts[s] : 0;
            double variance = counts[s] > 0 ? squares[s] / counts[s] - mean * mean : 0;
            means[s] = (float)mean;
            stds[s] = variance > 1e-12 ? (float)Math.Sqrt(variance) : 1f;
        }
        return new FeatureScaler(means, stds);
    }

    /// <summary>This scaler with the slots of every one-hot group of two or more slots left raw (mean 0, std 1), so their
    /// 0/1 values select a category's embedding (see <see cref="OneHotGroups"/>).</summary>
    /// <param name="slotTokens">Per slot, its token (<see cref="OneHotGroups.Find"/>).</param>
    public FeatureScaler WithRawGroups(int[] slotTokens)
    {
        var means = (float[])Means.Clone();
        var stds = (float[])Stds.Clone();
        for (int s = 0; s < slotTokens.Length; s++)
        {
            bool grouped = (s > 0 && slotTokens[s - 1] == slotTokens[s]) || (s + 1 < slotTokens.Length && slotTokens[s + 1] == slotTokens[s]);
            if (grouped) (means[s], stds[s]) = (0f, 1f);
        }
        return new FeatureScaler(means, stds);
    }

    /// <summary>Standardises <paramref name="features"/> [N, F] row-major in place.</summary>
    public void Apply(Span<float> features)
    {
        int f = Means.Length;
        for (int i = 0; i < features.Length; i++)
            features[i] = (features[i] - Means[i % f]) / Stds[i % f];
    }
}
