namespace Microsoft.ML.MemoryFormer.Diagnostics;

/// <summary>FLOPs of one block, split as in the paper's Table 1.</summary>
/// <param name="Projections">FC layers (dense) or Memory Layers (MemoryFormer): "FLOPs excluding attention".</param>
/// <param name="Attention">2·s²·d.</param>
public readonly record struct BlockFlops(double Projections, double Attention)
{
    /// <summary>Total FLOPs of the block.</summary>
    public double Total => Projections + Attention;
}
