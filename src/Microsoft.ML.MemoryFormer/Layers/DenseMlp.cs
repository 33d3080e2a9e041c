using Microsoft.ML.MemoryFormer.Configuration;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>The dense baseline's FFN: Linear d → 4d, GELU, Linear 4d → d.</summary>
internal sealed class DenseMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear expand;
    private readonly GELU activation;
    private readonly Linear project;

    public DenseMlp(MemoryFormerConfig c) : base(nameof(DenseMlp))
    {
        expand = nn.Linear(c.Width, 4L * c.Width);
        activation = nn.GELU();
        project = nn.Linear(4L * c.Width, c.Width);
        DenseInit.Normal(expand, c.EmbeddingInitStd);
        DenseInit.Normal(project, c.EmbeddingInitStd / Math.Sqrt(2.0 * c.Layers));
        RegisterComponents();
    }

    /// <summary>The first projection d → 4d (read by the fused decode step).</summary>
    internal Linear Expand => expand;

    /// <summary>The second projection 4d → d (read by the fused decode step).</summary>
    internal Linear Project => project;

    /// <summary>x [N, d] → [N, d]; with <see cref="Runtime.KernelSettings.Bf16DenseLinear"/> the hidden [N, 4d] and its GELU stay bf16.</summary>
    public override Tensor forward(Tensor x) =>
        DenseLinear.Apply(project, activation.call(DenseLinear.Apply(expand, x, keepBf16: true)));
}
