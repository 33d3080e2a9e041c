using Microsoft.ML.MemoryFormer.Configuration;

namespace Microsoft.ML.MemoryFormer.Diagnostics;

/// <summary>
/// FLOPs, parameters and memory of a MemoryFormer and of the dense transformer of the same shape, counted as the
/// paper counts them (paper §3, Tables 1–3: one multiply-add = one FLOP, inference, one block; docs/model-spec.md, "Cost").
/// </summary>
public static class CostEstimator
{
    /// <summary>Attention scores and weighted values of one block: 2·s²·d (QKᵀ and AV).</summary>
    public static double AttentionFlops(int sequenceLength, int width) => 2.0 * sequenceLength * sequenceLength * width;

    /// <summary>Q, K, V, O and a 4× FFN of a standard block: 12·s·d².</summary>
    public static double DenseProjectionFlops(int sequenceLength, int width) => 12.0 * sequenceLength * width * width;

    /// <summary>The paper's count for a MemoryFormer block's Memory Layers: (6/τ)·s·d² = 6·K·s·d.</summary>
    public static double MemoryProjectionFlops(int sequenceLength, MemoryFormerConfig config) =>
        6.0 * config.ChunkCount * sequenceLength * config.Width;

    /// <summary>
    /// The exact count of row reads: s·K·(3d + (τ+extra)·K + d), i.e. 5.25·s·K·d at τ = 8 (docs/model-spec.md, "Cost": the paper's
    /// 6·K·s·d slightly overcounts).
    /// </summary>
    public static double ExactMemoryGatherFlops(int sequenceLength, MemoryFormerConfig config) =>
        (double)sequenceLength * config.ChunkCount * (4.0 * config.Width + config.BlockHiddenWidth);

    /// <summary>Per-block FLOPs at <paramref name="sequenceLength"/> for the config's <see cref="MemoryFormerConfig.Kind"/>.</summary>
    public static BlockFlops Block(MemoryFormerConfig config, int sequenceLength)
    {
        double projections = config.Kind == TransformerKind.MemoryFormer
            ? MemoryProjectionFlops(sequenceLength, config)
            : DenseProjectionFlops(sequenceLength, config.Width);
        return new BlockFlops(projections, AttentionFlops(sequenceLength, config.Width));
    }

    /// <summary>Parameters of one Memory Layer: K·2^τ·h table values (the bias is not counted).</summary>
    public static long MemoryLayerTableParameters(int chunkCount, int bitsPerChunk, int outputWidth) =>
        chunkCount * (1L << bitsPerChunk) * outputWidth;

    /// <summary>Table parameters of a Memory Block (the FFN replacement, paper Table 5): ML₁ + ML₂.</summary>
    public static long MemoryBlockTableParameters(MemoryFormerConfig c) =>
        MemoryLayerTableParameters(c.ChunkCount, c.BitsPerChunk, c.BlockHiddenWidth)
        + MemoryLayerTableParameters(c.ChunkCount, c.BitsPerChunk + c.ExtraBits, c.Width);

    /// <summary>Table parameters of a whole MemoryFormer block: Q, K, V and the Memory Block (docs/model-spec.md, "Tables").</summary>
    public static long BlockTableParameters(MemoryFormerConfig c) =>
        3 * MemoryLayerTableParameters(c.ChunkCount, c.BitsPerChunk, c.Width) + MemoryBlockTableParameters(c);

    /// <summary>Exact parameter count of a <see cref="Models.LanguageModel"/> built from <paramref name="c"/>.</summary>
    public static long LanguageModelParameters(MemoryFormerConfig c) =>
        (long)c.VocabularySize * c.Width + (long)Models.LanguageModel.HeadParameterCount(c) + NormParameters(c.Norm, c.Width) + c.Layers * BlockParameters(c);

    /// <summary>Exact parameter count of one block (norms included).</summary>
    public static long BlockParameters(MemoryFormerConfig c)
    {
        long d = c.Width, norms = 2 * NormParameters(c.Norm, c.Width);
        if (c.Kind == TransformerKind.Dense)
            return norms + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d);
        long h1 = c.BlockHiddenWidth;
        return norms + BlockTableParameters(c) + 3 * d + h1 + 2 * h1 + d;
    }

    /// <summary>Bytes of <paramref name="parameters"/> values at <paramref name="bytesPerValue"/> (2 for fp16).</summary>
    public static double Bytes(long parameters, int bytesPerValue) => (double)parameters * bytesPerValue;

    private static long NormParameters(NormKind kind, int width) => kind == NormKind.RmsNorm ? width : 2L * width;
}
