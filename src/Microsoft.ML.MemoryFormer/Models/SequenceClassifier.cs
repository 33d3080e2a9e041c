using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
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

    /// <summary>The head (and the wide branch, when on) over vectors already pooled by the fused inference encoder
    /// (<see cref="Layers.Kernels.FusedEncoder"/>), as <see cref="Outputs"/> in eval mode: pooled [B, d] and the windows they
    /// came from → logits [B, C] at <paramref name="logits"/>.</summary>
    /// <remarks>Each window's logits are computed from its own pooled vector (and bag) alone, in a fixed order
    /// (<see cref="HeadGemv.Linear(float*, int, float*, float*, int, int, float*)"/>, then the bag's product), so they do not
    /// depend on how many other windows share the call: a row scored by a PredictionEngine gets the bits a batched Transform
    /// gives it. libtorch's GEMM, used before, rounds by batch shape and could move a logit by one ulp.</remarks>
    public unsafe void PooledLogits(float* pooled, IReadOnlyList<int[]> windows, float* logits)
    {
        var weight = head.Output.weight!;                                                        // [C, d]
        float* w = TensorMemory.Floats(weight), bias = TensorMemory.Floats(head.Output.bias!);
        int rows = windows.Count, classes = (int)weight.shape[0], width = (int)weight.shape[1];
        HeadGemv.Linear(pooled, rows, w, bias, classes, width, logits);                          // [B, C]
        GC.KeepAlive(weight);
        if (ngrams is null) return;
        float* bag = stackalloc float[width];
        float* bagLogits = stackalloc float[classes];
        for (int r = 0; r < rows; r++)
        {
            float* y = logits + ((long)r * classes);
            ngrams.WindowBag(windows[r], bag);                                                   // [d]
            HeadGemv.Compute(bag, 1, w, classes, width, bagLogits);                              // [C]
            for (int c = 0; c < classes; c++)
                y[c] += bagLogits[c];
        }
        GC.KeepAlive(weight);
    }

    /// <summary>What the head's linear layer reads for each window, pooled by the fused encoder: the pooled vector, plus the
    /// window's n-gram bag when the wide branch is on (the logits are this times the head's weight, plus its bias). pooled [B, d]
    /// → features [B, d] at <paramref name="features"/>.</summary>
    public unsafe void PooledFeatures(float* pooled, IReadOnlyList<int[]> windows, float* features)
    {
        int width = Config.Width;
        Buffer.MemoryCopy(pooled, features, (long)windows.Count * width * sizeof(float), (long)windows.Count * width * sizeof(float));
        if (ngrams is null) return;
        float* bag = stackalloc float[width];
        for (int r = 0; r < windows.Count; r++)
        {
            ngrams.WindowBag(windows[r], bag);                                                   // [d]
            RowKernels.Add(bag, features + ((long)r * width), width);
        }
    }

    /// <summary>The same features through the torch modules: tokens int64 [B, T], hidden [B, T, d], mask → [B, d].</summary>
    public Tensor Features(Tensor tokens, Tensor hidden, Tensor? mask)
    {
        var pooled = SequencePooling.Pool(hidden, mask, head.Pooling);                          // [B, d]
        return ngrams is null ? pooled : LiveScalars.Add(pooled, ngrams.Forward(tokens, mask));
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
