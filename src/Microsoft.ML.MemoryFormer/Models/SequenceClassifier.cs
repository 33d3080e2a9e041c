using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// A bidirectional encoder over token ids with a <see cref="PredictionHead"/>: backbone (attention without the causal
/// mask, padded keys masked out) → pooling → linear. Outputs class logits (or one value for regression).
/// </summary>
internal sealed class SequenceClassifier : nn.Module
{
    private readonly TransformerBackbone backbone;
    private readonly PredictionHead head;

    public SequenceClassifier(MemoryFormerConfig config, int outputs, PoolingKind pooling, double headDropout)
        : base(nameof(SequenceClassifier))
    {
        backbone = new TransformerBackbone(config);
        head = new PredictionHead(config.Width, outputs, pooling, headDropout, config.EmbeddingInitStd);
        RegisterComponents();
    }

    /// <summary>The architecture of the encoder.</summary>
    public MemoryFormerConfig Config => backbone.Config;

    /// <summary>The encoder, e.g. to load pretrained weights into.</summary>
    public TransformerBackbone Backbone => backbone;

    /// <summary>The task head.</summary>
    public PredictionHead Head => head;

    /// <summary>tokens int64 [B, T] and mask bool [B, T] (null = unpadded) → outputs [B, C].</summary>
    public Tensor Forward(Tensor tokens, Tensor? mask)
    {
        var hidden = backbone.Forward(tokens, new AttentionContext(Causal: false, KeyMask: mask)); // [B, T, d]
        return head.Forward(hidden, mask);                                                       // [B, C]
    }

    /// <summary>Copies every backbone weight from <paramref name="source"/> (same architecture).</summary>
    public void LoadBackbone(TransformerBackbone source)
    {
        var from = source.state_dict();
        using var noGrad = no_grad();
        foreach (var (name, tensor) in backbone.state_dict())
        {
            if (!from.TryGetValue(name, out var value) || !value.shape.SequenceEqual(tensor.shape))
                throw new InvalidDataException($"The pretrained backbone has no weight '{name}' of shape [{string.Join(", ", tensor.shape)}].");
            tensor.copy_(value);
        }
    }
}
