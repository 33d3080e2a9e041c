namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>
/// The precision of the weights the fused batch-1 CPU decode step reads (<c>LanguageModel.UseInferencePrecision</c>).
/// The stored fp32 weights never change: the lower precisions are copies made for inference, and every activation and
/// accumulation stays fp32.
/// </summary>
public enum InferencePrecision
{
    /// <summary>The fp32 weights themselves (the default).</summary>
    Float32,

    /// <summary>
    /// bf16 copies (round to nearest, ties to even) of the LM head, of MemoryFormer's Memory Layer tables and, for the
    /// dense baseline, of its attention and MLP matrices: half the bytes of fp32, 8 significant bits, fp32's range.
    /// </summary>
    BFloat16,

    /// <summary>
    /// int8 row-wise copies (symmetric, one fp32 scale per row = the row's largest |value| / 127, round to nearest) of
    /// the LM head, of MemoryFormer's Memory Layer tables and, for the dense baseline, of its attention and MLP matrices:
    /// a quarter of the bytes of fp32.
    /// </summary>
    Int8,
}
