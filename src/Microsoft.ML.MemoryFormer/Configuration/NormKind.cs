namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>The normalisation used before attention, before the FFN and before the head.</summary>
public enum NormKind
{
    /// <summary>RMSNorm as in the official code: x / (‖x‖₂/√d + ε) · g.</summary>
    RmsNorm,

    /// <summary>LayerNorm with affine parameters, as in Pythia.</summary>
    LayerNorm,
}
