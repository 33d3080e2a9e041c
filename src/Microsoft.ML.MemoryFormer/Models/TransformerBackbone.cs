using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// Token embedding → L blocks → final norm: the body shared by the language model and the task heads.
/// No learned positions: rotary only (docs/model-spec.md, "Attention and rotary"). Built as a MemoryFormer or as the dense baseline of the
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

    /// <summary>The token embedding's reused gradient buffer, written by the sparse lookup while a training loop has attached it
    /// (<see cref="SparseEmbedding"/>).</summary>
    internal TableGradient EmbeddingGradient { get; } = new();

    /// <summary>The blocks, in order.</summary>
    internal IList<TransformerBlock> Blocks => blocks;

    /// <summary>The final norm.</summary>
    internal nn.Module<Tensor, Tensor> FinalNorm => finalNorm;

    /// <summary>Token ids [B, T] → hidden states [B, T, d].</summary>
    /// <exception cref="ArgumentException">tokens is not [B, T].</exception>
    internal Tensor Forward(Tensor tokens, AttentionContext context)
    {
        if (tokens.dim() != 2)
            throw new ArgumentException($"Token ids must be [B, T]; got shape [{string.Join(", ", tokens.shape)}].", nameof(tokens));
        return ForwardEmbeddings(Embed(tokens), context);                       // [B, T, d]
    }

    /// <summary>The embedding vectors of token ids [..] → [.., d] (also used by tabular feature tokens); sparse in a training
    /// step whose batch holds few of the rows (<see cref="SparseEmbedding"/>).</summary>
    internal Tensor Embed(Tensor tokens)
    {
        var weight = embedding.weight!;
        return SparseEmbedding.Takes(tokens, weight, EmbeddingGradient) ? SparseEmbedding.Lookup(tokens, weight, EmbeddingGradient) : embedding.call(tokens);
    }

    /// <summary>Runs the blocks and final norm on embeddings x [B, T, d] (task heads that build their own tokens).</summary>
    /// <exception cref="ArgumentException">x is not [B, T, d], or the positions run past the context length.</exception>
    internal Tensor ForwardEmbeddings(Tensor x, AttentionContext context)
    {
        if (x.dim() != 3 || x.shape[2] != Config.Width)
            throw new ArgumentException($"The backbone expects embeddings [B, T, d] with d = {Config.Width}; got shape " +
                $"[{string.Join(", ", x.shape)}].", nameof(x));
        long past = context.PastLength;
        if (past + x.shape[1] > Config.ContextLength)
            throw new ArgumentException($"The model covers {Config.ContextLength} positions (ContextLength); got {x.shape[1]} " +
                $"{(past > 0 ? $"after {past} cached " : "")}positions. Crop the sequence to the last {Config.ContextLength} tokens.", nameof(x));
        for (int i = 0; i < blocks.Count; i++)
            x = blocks[i].Forward(x, context, context.Caches?[i]);              // [B, T, d]
        return finalNorm.call(x);                                                // [B, T, d]
    }

    /// <summary>Allocates one KV cache per layer for <paramref name="batch"/> sequences of up to the context length.</summary>
    internal AttentionCache[] NewCaches(long batch, Device device) =>
        Enumerable.Range(0, Config.Layers).Select(_ => new AttentionCache(batch, Config.Heads, Config.ContextLength,
            Config.HeadWidth, ScalarType.Float32, device)).ToArray();
}
