using Microsoft.ML.MemoryFormer.Configuration;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>The dense baseline's Q, K, V: one fused linear layer d → 3d.</summary>
internal sealed class DenseQkv : nn.Module<Tensor, (Tensor Q, Tensor K, Tensor V)>
{
    private readonly Linear qkv;

    public DenseQkv(MemoryFormerConfig config) : base(nameof(DenseQkv))
    {
        qkv = nn.Linear(config.Width, 3L * config.Width);
        DenseInit.Normal(qkv, config.EmbeddingInitStd);
        RegisterComponents();
    }

    /// <summary>The fused Q/K/V projection d → 3d (read by the fused decode step).</summary>
    internal Linear Projection => qkv;

    /// <summary>x [N, d] → Q, K, V each [N, d] (fp32; in bf16 inside with <see cref="Runtime.KernelSettings.Bf16DenseLinear"/>).</summary>
    public override (Tensor Q, Tensor K, Tensor V) forward(Tensor x)
    {
        var parts = DenseLinear.Apply(qkv, x).chunk(3, -1);                      // 3 × [N, d]
        return (parts[0], parts[1], parts[2]);
    }
}
