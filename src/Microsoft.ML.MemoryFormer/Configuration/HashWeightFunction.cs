namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>How a Memory Layer weights the table row a chunk z selects (docs/model-spec.md, "Weight functions").</summary>
public enum HashWeightFunction
{
    /// <summary>The official code: ‖z‖₁ · Π σ(2|zᵢ|). Grows with |z| like a linear map; gradient does not saturate.</summary>
    L1ScaledSigmoidProduct,

    /// <summary>The paper, eq. 10: Π σ(2|zᵢ|/t), the softmax probability of the selected code at temperature t.</summary>
    SigmoidProduct,
}
