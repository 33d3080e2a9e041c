using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// A bidirectional encoder over token ids with a <see cref="PredictionHead"/>: backbone (attention without the causal
/// mask, padded keys masked out) → pooling → linear. Outputs class logits (or one value for regression). With an n-gram
/// bag (<see cref="HashedNgramBag"/>, the wide branch) the row's bag vector is added to the pooled output in front of the
/// head's linear layer (after the head's dropout), in every forward pass: training, validation and scoring.
/// </summary>
internal sealed class SequenceClassifier : nn.Module
{
    private readonly TransformerBackbone backbone;
    private readonly PredictionHead head;
    private readonly HashedNgramBag? ngrams;

    /// <param name="config">The encoder's architecture.</param>
    /// <param name="outputs">Classes (or 1 for regression).</param>
    /// <param name="pooling">How the hidden states are pooled.</param>
    /// <param name="headDropout">Dropout before the head's linear layer.</param>
    /// <param name="ngramBuckets">Rows of the wide branch's n-gram table; 0 = no wide branch (the parameters are then
    /// exactly those of a classifier saved before the branch existed).</param>
    /// <param name="ngramLength">Longest n-gram of the wide branch, in [1, 3].</param>
    public SequenceClassifier(MemoryFormerConfig config, int outputs, PoolingKind pooling, double headDropout,
        int ngramBuckets = 0, int ngramLength = 2)
        : base(nameof(SequenceClassifier))
    {
        backbone = new TransformerBackbone(config);
        head = new PredictionHead(config.Width, outputs, pooling, headDropout, config.EmbeddingInitStd);
        ngrams = ngramBuckets > 0 ? new HashedNgramBag(ngramBuckets, ngramLength, config.Width) : null;
        RegisterComponents();
        Runtime.TorchScope.Keep(this);                                          // built inside a Fit's or a loader's scope
    }

    /// <summary>The architecture of the encoder.</summary>
    public MemoryFormerConfig Config => backbone.Config;

    /// <summary>The encoder, e.g. to load pretrained weights into.</summary>
    public TransformerBackbone Backbone => backbone;

    /// <summary>The task head.</summary>
    public PredictionHead Head => head;

    /// <summary>The wide branch, or null when it is off.</summary>
    public HashedNgramBag? NgramBag => ngrams;

    /// <summary>tokens int64 [B, T] and mask bool [B, T] (null = unpadded) → outputs [B, C].</summary>
    public Tensor Forward(Tensor tokens, Tensor? mask) =>
        Outputs(tokens, backbone.Forward(tokens, new AttentionContext(Causal: false, KeyMask: mask)), mask); // [B, C]

    /// <summary>The head (and the wide branch, when on) over the backbone's output: tokens int64 [B, T], hidden
    /// [B, T, d], mask bool [B, T] (null = unpadded) → outputs [B, C]. Every scoring path ends here.</summary>
    public Tensor Outputs(Tensor tokens, Tensor hidden, Tensor? mask)
    {
        var outputs = head.Forward(hidden, mask);                                                // [B, C]
        if (ngrams is null) return outputs;
        var bag = ngrams.Forward(tokens, mask);                                                  // [B, d]
        return LiveScalars.Add(outputs, bag.matmul(head.Output.weight!.t()));                    // [B, C]
    }

    /// <summary>The head (and the wide branch, when on) over vectors already pooled [B, d] (the fused inference encoder,
    /// <see cref="Layers.Kernels.FusedEncoder"/>) → outputs [B, C], as <see cref="Outputs"/> in eval mode;
    /// <paramref name="tokens"/> builds the padded tokens and mask, called only when the wide branch is on.</summary>
    public Tensor PooledOutputs(Tensor pooled, Func<(Tensor Tokens, Tensor? Mask)> tokens)
    {
        var outputs = head.Output.call(pooled);                                                  // [B, C]
        if (ngrams is null) return outputs;
        var (ids, mask) = tokens();
        var bag = ngrams.Forward(ids, mask);                                                     // [B, d]
        return LiveScalars.Add(outputs, bag.matmul(head.Output.weight!.t()));                    // [B, C]
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
