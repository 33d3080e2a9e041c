using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// Per-channel centring of a hash input (<see cref="Configuration.HashCentering"/>): z [N, w] → z − μ [N, w]. In training
/// μ is the batch's mean over its N tokens — with the gradient through it as batch norm has it (each channel's ∂L/∂z
/// loses its mean over the tokens), or detached (∂L/∂(z − μ) passes to z unchanged) — or its detached lower median, and it
/// is folded into the running mean, the persistent buffer <c>running_mean</c> [w]; in evaluation μ is that, frozen. RMSNorm centres
/// nothing and LayerNorm centres each token across its channels; this centres each channel across tokens, so every sign
/// bit of the hash sees a channel whose mean is zero (docs/model-spec.md, "Norms").
/// </summary>
/// <remarks>The batch mean reads every token of the batch, later positions included, as batch norm does; evaluation
/// reads only the running mean.</remarks>
internal sealed class HashCentre : nn.Module<Tensor, Tensor>
{
    /// <summary>The running mean's momentum m: μ ← (1 − m)·μ + m·(batch statistic), batch norm's default.</summary>
    public const double Momentum = 0.1;

    private readonly Tensor mean;   // [w], the running mean
    private readonly Scalar keep, take;

    /// <summary>Centres inputs of <paramref name="width"/> channels; the running mean starts at zero.</summary>
    public HashCentre(int width, Configuration.HashCentering kind = Configuration.HashCentering.RunningMean) : base(nameof(HashCentre))
    {
        Kind = kind;
        mean = zeros(width).DetachFromDisposeScope();                         // owned by the module, not a caller's scope
        (keep, take) = (1 - Momentum, Momentum);                                // module-owned scalars: see Runtime.LiveScalars
        register_buffer("running_mean", mean);
    }

    /// <summary>Which centre and backward (<see cref="Configuration.HashCentering"/>, not None).</summary>
    internal Configuration.HashCentering Kind { get; }

    /// <summary>Whether the batch statistic carries no gradient (the detached mean and the median).</summary>
    internal bool Detached => Kind != Configuration.HashCentering.RunningMean;

    /// <summary>The running mean μ [w] (the buffer itself).</summary>
    internal Tensor RunningMean => mean;

    /// <summary>z [N, w] → z − μ [N, w]; in training updates the running mean.</summary>
    /// <exception cref="ArgumentException">z is not [N, w].</exception>
    public override Tensor forward(Tensor z)
    {
        if (z.dim() != 2 || z.shape[1] != mean.shape[0])
            throw new ArgumentException($"HashCentre expects z [N, {mean.shape[0]}]; got shape [{string.Join(", ", z.shape)}].", nameof(z));
        if (!training || z.shape[0] == 0)
            return z - mean;                                                    // [N, w], frozen μ
        Tensor batch;
        using (no_grad())
        {
            batch = Kind == Configuration.HashCentering.RunningMedian
                ? z.kthvalue((z.shape[0] + 1) / 2, 0).values                    // [w], the lower middle value
                : z.mean([0]);                                                  // [w], detached
            mean.mul_(keep).add_(batch, take);
        }
        return z - (Detached ? batch : z.mean([0]));                            // [N, w]
    }
}
