using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// Token embedding → L blocks → final norm: the body shared by the language model and the task heads.
/// No learned positions: rotary only (<c>pos-emb: rotary</c> in the official code's <c>configs/*.yml</c>). Built as a MemoryFormer or as the dense baseline of the
/// same shape, from <see cref="MemoryFormerConfig.Kind"/>.
/// </summary>
public sealed class TransformerBackbone : nn.Module
{
    private readonly Embedding embedding;
    private readonly ModuleList<TransformerBlock> blocks;
    private readonly nn.Module<Tensor, Tensor> finalNorm;

    /// <summary>Builds the backbone; the config is validated first.</summary>
    public TransformerBackbone(MemoryFormerConfig config) : base(nameof(TransformerBackbone))
    {
        Config = config.Validate();
        embedding = nn.Embedding(config.VocabularySize, config.Width);
        blocks = nn.ModuleList(Enumerable.Range(0, config.Layers).Select(_ => new TransformerBlock(config)).ToArray());
        finalNorm = RmsNorm.Create(config.Norm, config.Width, config.NormEpsilon);
        using (no_grad()) embedding.weight!.normal_(0, config.EmbeddingInitStd);
        RegisterComponents();
    }

    /// <summary>The architecture.</summary>
    public MemoryFormerConfig Config { get; }

    /// <summary>The token embedding [V, d].</summary>
    internal Embedding Embedding => embedding;

    /// <summary>The blocks, in order.</summary>
    internal IList<TransformerBlock> Blocks => blocks;

    /// <summary>The final norm.</summary>
    internal nn.Module<Tensor, Tensor> FinalNorm => finalNorm;

    /// <summary>Token ids [B, T] → hidden states [B, T, d].</summary>
    internal Tensor Forward(Tensor tokens, AttentionContext context) =>
        ForwardEmbeddings(embedding.call(tokens), context);                     // [B, T, d]

    /// <summary>The embedding vectors of token ids [..] → [.., d] (used by tabular feature tokens).</summary>
    internal Tensor Embed(Tensor tokens) => embedding.call(tokens);

    /// <summary>Runs the blocks and final norm on embeddings x [B, T, d] (task heads that build their own tokens).</summary>
    internal Tensor ForwardEmbeddings(Tensor x, AttentionContext context)
    {
        for (int i = 0; i < blocks.Count; i++)
            x = blocks[i].Forward(x, context, context.Caches?[i]);              // [B, T, d]
        return finalNorm.call(x);                                                // [B, T, d]
    }

    /// <summary>Allocates one KV cache per layer for <paramref name="batch"/> sequences of up to the context length.</summary>
    internal AttentionCache[] NewCaches(long batch, Device device) =>
        Enumerable.Range(0, Config.Layers).Select(_ => new AttentionCache(batch, Config.Heads, Config.ContextLength,
            Config.HeadWidth, ScalarType.Float32, device)).ToArray();
}
