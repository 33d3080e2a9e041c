using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// RMSNorm as in the official code (<c>megatron/model/norms.py</c>): x / (‖x‖₂/√d + ε) · g, with ε outside the root,
/// a learned gain and no bias. It does not centre its input, so a per-channel offset biases that channel's hash bit
/// (docs/model-spec.md, "Norms").
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;   // [d]
    private readonly Scalar epsilon;     // module-owned scalars: see Runtime.LiveScalars
    private readonly Scalar sqrtWidth;

    /// <summary>Creates the norm over the last dimension of width <paramref name="width"/>.</summary>
    public RmsNorm(int width, double epsilon) : base(nameof(RmsNorm))
    {
        weight = new Parameter(ones(width));
        this.epsilon = epsilon;
        Epsilon = epsilon;
        sqrtWidth = Math.Sqrt(width);
        RegisterComponents();
    }

    /// <summary>ε, added to ‖x‖₂/√d.</summary>
    internal double Epsilon { get; }

    /// <summary>The gain g [d].</summary>
    internal Parameter Weight => weight;

    /// <summary>x [.., d] → [.., d].</summary>
    public override Tensor forward(Tensor x) =>
        x / x.norm(-1, keepdim: true).div(sqrtWidth).add(epsilon, Runtime.LiveScalars.One) * weight;

    /// <summary>The norm the config asks for: RMSNorm or LayerNorm over <paramref name="width"/>, with exactly
    /// <paramref name="epsilon"/> (a validated config keeps a LayerNorm's at 1e-5 or more).</summary>
    internal static nn.Module<Tensor, Tensor> Create(Configuration.NormKind kind, int width, double epsilon) =>
        kind == Configuration.NormKind.RmsNorm
            ? new RmsNorm(width, epsilon)
            : nn.LayerNorm(width, epsilon);
}
