namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>
/// Whether each Memory Layer's hash input is centred per channel before the sign hash (<see cref="MemoryFormerConfig.HashCentering"/>).
/// Neither the paper nor the official code centres it: RMSNorm does not subtract a mean, so a channel with a persistent
/// offset gives a sign bit that is nearly always the same and wastes table rows (docs/model-spec.md, "Norms";
/// docs/benchmarks.md, "Language modelling at token level", round 4).
/// </summary>
public enum HashCentering
{
    /// <summary>No centring: the hash reads its input as the norm gives it (the paper and the official code; the default).</summary>
    None,

    /// <summary>
    /// Subtract a per-channel mean before the hash and the weights, as batch norm does: in training the batch's mean over
    /// its tokens, with the gradient through it (batch norm's backward: each channel's ∂L/∂z loses its mean over the
    /// tokens), folded into a running mean (momentum
    /// <see cref="Layers.HashCentre.Momentum"/>) that is saved with the model; in evaluation the running mean, frozen. The
    /// Memory Layer is then a function of z − μ: its rows and weights both read the centred input. Applies to Q/K/V's shared
    /// hash and to both layers of the Memory Block.
    /// </summary>
    RunningMean,

    /// <summary>
    /// As <see cref="RunningMean"/>, but the batch mean carries no gradient: the backward passes ∂L/∂(z − μ) to z
    /// unchanged, including the part common to every token that the centring removes again.
    /// </summary>
    RunningMeanDetached,

    /// <summary>
    /// As <see cref="RunningMeanDetached"/> with the batch's per-channel median (the lower middle value) in place of its
    /// mean, and a running mean of those medians: each sign bit is then balanced on the batch even where a channel's
    /// distribution is skewed (its mean and median apart).
    /// </summary>
    RunningMedian,
}
