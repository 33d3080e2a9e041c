using Microsoft.ML.MemoryFormer.Configuration;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// The Memory Block that replaces the FFN (paper §2.4; the official code's <c>extra_bit</c> expansion in
/// <c>megatron/model/transformer.py</c>; docs/model-spec.md, "Memory Block"): ML₁ (d → K·(τ+2)), LayerNorm (ε 1e-5),
/// ML₂ re-chunking its input into the same K chunks of τ+2 bits (→ d). No activation in between (paper Table 6).
/// Tables use std 0.02.
/// </summary>
internal sealed class MemoryBlock : nn.Module<Tensor, Tensor>
{
    private readonly MemoryLayer expand;
    private readonly LayerNorm norm;
    private readonly MemoryLayer project;

    public MemoryBlock(MemoryFormerConfig c) : base(nameof(MemoryBlock))
    {
        expand = new MemoryLayer(c.ChunkCount, c.BitsPerChunk, c.BlockHiddenWidth, c.WeightFunction, c.Temperature,
            c.TableInitStd, c.BiasInitStd);
        norm = nn.LayerNorm(c.BlockHiddenWidth, NormEpsilon);
        project = new MemoryLayer(c.ChunkCount, c.BitsPerChunk + c.ExtraBits, c.Width, c.WeightFunction, c.Temperature,
            c.TableInitStd, c.BiasInitStd);
        RegisterComponents();
    }

    /// <summary>ε of the inner LayerNorm.</summary>
    internal const double NormEpsilon = 1e-5;

    /// <summary>ML₁, d → K·(τ+2).</summary>
    internal MemoryLayer Expand => expand;

    /// <summary>The LayerNorm between the two layers.</summary>
    internal LayerNorm Norm => norm;

    /// <summary>ML₂, K chunks of τ+2 bits → d.</summary>
    internal MemoryLayer Project => project;

    /// <summary>x [N, d] → [N, d].</summary>
    /// <exception cref="ArgumentException">The last dimension of x is not d = K·τ.</exception>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 2 || x.shape[1] != expand.InputWidth)
            throw new ArgumentException($"The Memory Block expects x [N, d] with d = K·τ = {expand.InputWidth}; got shape " +
                $"[{string.Join(", ", x.shape)}].", nameof(x));
        var hidden = expand.call(x);                                             // [N, K·(τ+2)]
        return project.call(norm.call(hidden));                                  // [N, d]
    }
}
