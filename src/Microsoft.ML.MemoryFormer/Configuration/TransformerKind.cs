namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>Which projections a transformer uses.</summary>
public enum TransformerKind
{
    /// <summary>Q/K/V and the FFN are hashed Memory Layers; attention has no output projection (the paper).</summary>
    MemoryFormer,

    /// <summary>The baseline: dense Q/K/V, an output projection W_O and a 4× GELU MLP; everything else identical.</summary>
    Dense,
}
