using Microsoft.ML.MemoryFormer.Configuration;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// Q, K and V as three Memory Layers that share one hash of the normalised input (official code
/// <c>_forward_memory_qkv</c> in <c>megatron/model/transformer.py</c>; docs/model-spec.md, "Q/K/V sharing"): the same
/// rows and weights read three different tables. Tables use the code's small_init, std √(2/(5d)).
/// </summary>
internal sealed class MemoryQkv : nn.Module<Tensor, (Tensor Q, Tensor K, Tensor V)>
{
    private readonly MemoryLayer query;
    private readonly MemoryLayer key;
    private readonly MemoryLayer value;
    private readonly HashCentre? hash_centre;   // MemoryFormerConfig.HashCentering set; the name is the state dict's

    public MemoryQkv(MemoryFormerConfig config) : base(nameof(MemoryQkv))
    {
        query = NewLayer(config);
        key = NewLayer(config);
        value = NewLayer(config);
        if (config.HashCentering != HashCentering.None)
            hash_centre = new HashCentre(config.Width, config.HashCentering);
        RegisterComponents();
    }

    /// <summary>The three layers Q, K, V; they share <see cref="Value"/>'s hash.</summary>
    internal MemoryLayer Query => query;

    /// <inheritdoc cref="Query"/>
    internal MemoryLayer Key => key;

    /// <inheritdoc cref="Query"/>
    internal MemoryLayer Value => value;

    /// <summary>The centring of the shared hash input, or null (<see cref="MemoryFormerConfig.HashCentering"/>).</summary>
    internal HashCentre? Centre => hash_centre;

    /// <summary>x [N, d] → Q, K, V each [N, d].</summary>
    public override (Tensor Q, Tensor K, Tensor V) forward(Tensor x)
    {
        if (hash_centre is not null)
            x = hash_centre.call(x);                                            // [N, d] centred per channel
        var codes = value.Hash(x);                                              // one hash: rows, weights [N, K]
        var y = MemoryGather.ApplyShared(codes, [query, key, value]);           // 3 × [N, d], one fused pass
        return (y[0], y[1], y[2]);
    }

    private static MemoryLayer NewLayer(MemoryFormerConfig c) => new(c.ChunkCount, c.BitsPerChunk, c.Width,
        c.WeightFunction, c.Temperature, c.EffectiveQkvInitStd, c.BiasInitStd);
}
