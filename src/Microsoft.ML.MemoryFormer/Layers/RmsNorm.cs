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

    /// <summary>x [.., d] → [.., d]. On the CPU in fp32 (with <see cref="Runtime.KernelSettings.UseFusedKernels"/>) one managed
    /// pass forward and backward (<see cref="Kernels.FusedRmsNorm"/>); elsewhere <see cref="Reference"/>.</summary>
    public override Tensor forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Runtime.KernelSettings.Current.UseFusedKernels && Runtime.KernelSettings.Current.FusedNormAndRotary && Kernels.FusedRmsNorm.IsSupported(x, weight)
            ? Kernels.FusedRmsNorm.Apply(x, weight, Epsilon)
            : Reference(x);
    }

    /// <summary>The torch-ops norm, the reference for the fused kernel and the path for CUDA and other dtypes.</summary>
    internal Tensor Reference(Tensor x) =>
        x / x.norm(-1, keepdim: true).div(sqrtWidth).add(epsilon, Runtime.LiveScalars.One) * weight;

    /// <summary>The norm the config asks for: RMSNorm or LayerNorm over <paramref name="width"/>, with exactly
    /// <paramref name="epsilon"/> (a validated config keeps a LayerNorm's at 1e-5 or more).</summary>
    internal static nn.Module<Tensor, Tensor> Create(Configuration.NormKind kind, int width, double epsilon) =>
        kind == Configuration.NormKind.RmsNorm
            ? new RmsNorm(width, epsilon)
            : nn.LayerNorm(width, epsilon);
}
