namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>How the tabular model turns a (standardised) numeric feature slot into a token.</summary>
public enum TabularNumericEmbedding
{
    /// <summary>x · Wᵢ + bᵢ, FT-Transformer's feature tokenizer (Gorishniy et al., NeurIPS 2021): one learned direction
    /// per slot, scaled by the value. The default, and the only kind of models saved before the option existed.</summary>
    Linear = 0,

    /// <summary>
    /// Periodic embeddings followed by a linear layer and ReLU ("PLR", Gorishniy et al., NeurIPS 2022, "On Embeddings for
    /// Numerical Features in Tabular Deep Learning"): ReLU([cos(2π cᵢ x), sin(2π cᵢ x)] · Wᵢ + bᵢ) with k learned
    /// frequencies cᵢ per slot, initialised from N(0, σ²). Lets a slot's token change non-monotonically with its value,
    /// which a linear token cannot.
    /// </summary>
    Periodic = 1,

    /// <summary>The periodic embedding without the ReLU ("PL" in the same paper): [cos(2π cᵢ x), sin(2π cᵢ x)] · Wᵢ + bᵢ.</summary>
    PeriodicLinear = 2,

    /// <summary>
    /// Piecewise-linear encoding followed by a linear layer ("PLE", Gorishniy et al., NeurIPS 2022, §3.2): PLE(x) · Pᵢ + bᵢ,
    /// where PLE(x) has one component per bin of the slot — 0 below the bin, 1 above it, linear inside — over bin edges
    /// learned on the training rows (<see cref="TabularBinning"/>). One-hot (two-valued) slots get a single bin, which is
    /// the linear token again, so only genuinely numeric slots are binned. The edges are saved with the model.
    /// </summary>
    PiecewiseLinear = 3,
}
