namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>How the Adam moments of the Memory Layer tables are stored during training (<c>TrainingOptions.TableMomentPrecision</c>).</summary>
public enum MomentPrecision
{
    /// <summary>fp32, as <c>torch.optim.AdamW</c> keeps them.</summary>
    Float32,

    /// <summary>
    /// bfloat16 with stochastic rounding; the update's arithmetic and the tables stay fp32. Halves the moments' memory
    /// (8 → 4 bytes per table parameter) and the optimizer moves 20 instead of 28 bytes per table parameter and step.
    /// The rounding is unbiased, so slow moments (β₂ close to 1) still grow and decay as in fp32.
    /// </summary>
    BFloat16,
}
