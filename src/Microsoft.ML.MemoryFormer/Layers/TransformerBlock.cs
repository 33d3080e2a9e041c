using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// One pre-norm block (paper Fig. 3, with the official code's residual layout; docs/model-spec.md, "Block"):
/// z = x + Attn(Norm(x)); out = z + FFN(Norm(z)).
/// The FFN is the Memory Block for MemoryFormer and a GELU MLP for the dense baseline.
/// </summary>
internal sealed class TransformerBlock : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> attentionNorm;
    private readonly SelfAttention attention;
    private readonly nn.Module<Tensor, Tensor> ffnNorm;
    private readonly nn.Module<Tensor, Tensor> ffn;
    private readonly HashedDropout dropout;
    private readonly int width;

    public TransformerBlock(MemoryFormerConfig c) : base(nameof(TransformerBlock))
    {
        width = c.Width;
        attentionNorm = RmsNorm.Create(c.Norm, c.Width, c.NormEpsilon);
        attention = new SelfAttention(c);
        ffnNorm = RmsNorm.Create(c.Norm, c.Width, c.NormEpsilon);
        ffn = c.Kind == TransformerKind.MemoryFormer ? new MemoryBlock(c) : new DenseMlp(c);
        dropout = new HashedDropout(c.Dropout);
        RegisterComponents();
    }

    /// <summary>The norm before attention (read by the fused decode step).</summary>
    internal nn.Module<Tensor, Tensor> AttentionNorm => attentionNorm;

    /// <summary>The attention (read by the fused decode step).</summary>
    internal SelfAttention Attention => attention;

    /// <summary>The norm before the FFN (read by the fused decode step).</summary>
    internal nn.Module<Tensor, Tensor> FfnNorm => ffnNorm;

    /// <summary>The FFN: a <see cref="MemoryBlock"/> or a <see cref="DenseMlp"/>.</summary>
    internal nn.Module<Tensor, Tensor> Ffn => ffn;

    /// <summary>x [B, T, d] → [B, T, d].</summary>
    /// <exception cref="ArgumentException">x is not [B, T, d].</exception>
    public Tensor Forward(Tensor x, AttentionContext context, AttentionCache? cache)
    {
        if (x.dim() != 3 || x.shape[2] != width)
            throw new ArgumentException($"A block expects x [B, T, d] with d = {width}; got shape [{string.Join(", ", x.shape)}].", nameof(x));
        var z = LiveScalars.Add(x, dropout.call(attention.Forward(attentionNorm.call(x), context, cache))); // [B, T, d]
        var flat = ffnNorm.call(z).reshape(-1, z.shape[^1]);                                 // [B·T, d]
        return LiveScalars.Add(z, dropout.call(ffn.call(flat).view(z.shape)));                              // [B, T, d]
    }
}
