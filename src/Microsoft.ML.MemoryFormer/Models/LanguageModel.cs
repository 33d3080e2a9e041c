using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// A causal language model: backbone + untied LM head (the official code's <c>no-weight-tying</c>; docs/model-spec.md, "Embedding and head"). The head is the only
/// dense matrix left in a MemoryFormer (paper §3.1).
/// </summary>
public sealed class LanguageModel : nn.Module<Tensor, Tensor>
{
    private readonly TransformerBackbone backbone;
    private readonly Linear head;

    /// <summary>Builds a model of the given architecture with fresh weights (seed torch first for determinism).</summary>
    public LanguageModel(MemoryFormerConfig config) : base(nameof(LanguageModel))
    {
        backbone = new TransformerBackbone(config);
        head = nn.Linear(config.Width, config.VocabularySize, hasBias: false);
        using (no_grad()) head.weight!.normal_(0, config.EmbeddingInitStd);
        RegisterComponents();
    }

    /// <summary>The architecture.</summary>
    public MemoryFormerConfig Config => backbone.Config;

    /// <summary>
    /// Whether single-token CPU decode steps of a MemoryFormer take the fused managed path (<see cref="FusedDecodeStep"/>)
    /// instead of the general torch path; on by default, off to compare the two.
    /// </summary>
    internal bool UseFusedDecode { get; set; } = true;

    /// <summary>The embedding, blocks and final norm, for fine-tuning with another head.</summary>
    public TransformerBackbone Backbone => backbone;

    /// <summary>The LM head, W [V, d] without bias.</summary>
    internal Linear Head => head;

    /// <summary>Token ids [B, T] → next-token logits [B, T, V] (causal, no cache).</summary>
    public override Tensor forward(Tensor tokens) => Forward(tokens, AttentionContext.CausalLm);

    /// <summary>Token ids [B, T] → logits [B, T, V] under the given attention context (masks, KV caches).</summary>
    internal Tensor Forward(Tensor tokens, AttentionContext context) =>
        head.call(backbone.Forward(tokens, context));                           // [B, T, V]

    /// <summary>Logits of the last position only, [B, V]: the decode step, where the head is one GEMV per row.</summary>
    internal Tensor ForwardLast(Tensor tokens, AttentionContext context)
    {
        var hidden = backbone.Forward(tokens, context);                          // [B, T, d]
        var last = hidden.select(1, -1);                                          // [B, d]
        return HeadGemv.Applies(last, head.weight!)
            ? HeadGemv.Apply(last, head.weight!)                                  // [B, V], one pass over the weight
            : head.call(last);                                                    // [B, V]
    }
}
