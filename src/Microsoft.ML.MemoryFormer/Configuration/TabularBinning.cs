namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>How the bin edges of <see cref="TabularNumericEmbedding.PiecewiseLinear"/> are chosen for each slot, on the
/// training rows (Gorishniy et al., NeurIPS 2022, "On Embeddings for Numerical Features in Tabular Deep Learning", §3.2).</summary>
public enum TabularBinning
{
    /// <summary>Label-free: the edges are the slot's empirical quantiles (equal-count bins; repeated quantiles are merged,
    /// so a 0/1 one-hot slot gets a single bin).</summary>
    Quantile = 0,

    /// <summary>Target-aware: the edges are the thresholds of a small decision tree grown on the slot alone against the
    /// label (best-first, at most as many leaves as bins; variance reduction for regression, Gini for classes).</summary>
    Tree = 1,
}
