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
    private readonly HashCentre? expand_centre;    // MemoryFormerConfig.HashCentering set; the names are the state dict's
    private readonly HashCentre? project_centre;

    public MemoryBlock(MemoryFormerConfig c) : base(nameof(MemoryBlock))
    {
        expand = new MemoryLayer(c.ChunkCount, c.BitsPerChunk, c.BlockHiddenWidth, c.WeightFunction, c.Temperature,
            c.TableInitStd, c.BiasInitStd);
        norm = nn.LayerNorm(c.BlockHiddenWidth, NormEpsilon);
        project = new MemoryLayer(c.ChunkCount, c.BitsPerChunk + c.ExtraBits, c.Width, c.WeightFunction, c.Temperature,
            c.TableInitStd, c.BiasInitStd);
        if (c.HashCentering != HashCentering.None)
            (expand_centre, project_centre) = (new HashCentre(c.Width, c.HashCentering), new HashCentre(c.BlockHiddenWidth, c.HashCentering));
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

    /// <summary>The centring of ML₁'s and ML₂'s hash inputs, or nulls (<see cref="MemoryFormerConfig.HashCentering"/>).</summary>
    internal (HashCentre? Expand, HashCentre? Project) Centres => (expand_centre, project_centre);

    /// <summary>x [N, d] → [N, d].</summary>
    /// <exception cref="ArgumentException">The last dimension of x is not d = K·τ.</exception>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 2 || x.shape[1] != expand.InputWidth)
            throw new ArgumentException($"The Memory Block expects x [N, d] with d = K·τ = {expand.InputWidth}; got shape " +
                $"[{string.Join(", ", x.shape)}].", nameof(x));
        var hidden = expand.call(Centre(expand_centre, x));                      // [N, K·(τ+2)]
        return project.call(Centre(project_centre, norm.call(hidden)));          // [N, d]
    }

    private static Tensor Centre(HashCentre? centre, Tensor z) => centre is null ? z : centre.call(z);
}
