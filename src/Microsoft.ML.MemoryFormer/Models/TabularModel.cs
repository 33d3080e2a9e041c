using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// A MemoryFormer for rows of a table: <see cref="FeatureTokenizer"/> → bidirectional MemoryFormer blocks of a
/// <see cref="TransformerBackbone"/> (its token embedding is unused) → the shared <see cref="PredictionHead"/> on the
/// [CLS] token (first-token pooling)
/// (FT-Transformer's layout, Gorishniy et al. 2021, with the blocks of MemoryFormer, paper §2.4).
/// </summary>
internal sealed class TabularModel : nn.Module<Tensor, Tensor>
{
    private readonly FeatureTokenizer tokenizer;
    private readonly TransformerBackbone backbone;
    private readonly PredictionHead head;

    /// <summary>
    /// Builds the model for <paramref name="featureCount"/> slots and <paramref name="outputCount"/> outputs
    /// (1 for regression, C logits for C classes, 2 for binary). The context length is set to 1 + F (1 + G with slot groups).
    /// </summary>
    /// <param name="config">The architecture.</param>
    /// <param name="featureCount">F, feature slots.</param>
    /// <param name="outputCount">Outputs per row.</param>
    /// <param name="embedding">How numeric slots become tokens (see <see cref="FeatureTokenizer"/>).</param>
    /// <param name="periodicFrequencies">k of periodic embeddings.</param>
    /// <param name="periodicScale">σ of the periodic frequencies' initialisation.</param>
    /// <param name="binEdges">Per-slot bin edges of piecewise-linear embeddings.</param>
    /// <param name="slotTokens">Per slot, its token when one-hot groups share one (see <see cref="Data.OneHotGroups"/>);
    /// null for one token per slot. The context length is then 1 + the number of tokens.</param>
    public TabularModel(MemoryFormerConfig config, int featureCount, int outputCount,
        TabularNumericEmbedding embedding = TabularNumericEmbedding.Linear, int periodicFrequencies = 0, double periodicScale = 0,
        float[][]? binEdges = null, int[]? slotTokens = null)
        : base(nameof(TabularModel))
    {
        tokenizer = new FeatureTokenizer(featureCount, config.Width, embedding, periodicFrequencies, periodicScale, binEdges, slotTokens);
        Config = ForFeatures(config, tokenizer.TokenCount);
        backbone = new TransformerBackbone(Config);
        head = new PredictionHead(Config.Width, outputCount, PoolingKind.First, Config.Dropout, Config.EmbeddingInitStd);
        OutputCount = outputCount;
        RegisterComponents();
        Runtime.TorchScope.Keep(this);                                          // built inside a Fit's or a loader's scope
    }

    /// <summary>The architecture actually built (context length 1 + F).</summary>
    public MemoryFormerConfig Config { get; }

    /// <summary>Outputs per row.</summary>
    public int OutputCount { get; }

    /// <summary>The feature tokenizer (read by the ONNX export).</summary>
    internal FeatureTokenizer Tokenizer => tokenizer;

    /// <summary>The blocks and final norm (read by the ONNX export).</summary>
    internal TransformerBackbone Backbone => backbone;

    /// <summary>The head on the [CLS] token (read by the ONNX export).</summary>
    internal PredictionHead Head => head;

    /// <summary>The config a model of <paramref name="tokenCount"/> feature tokens (slots, or slot groups) runs with.</summary>
    public static MemoryFormerConfig ForFeatures(MemoryFormerConfig config, int tokenCount) =>
        config with { ContextLength = tokenCount + 1, VocabularySize = 1 };

    /// <summary>Whether <see cref="ForwardFused"/> computes this model: in eval mode, on the CPU, with the fused kernels
    /// (<see cref="FusedEncoder.Supports"/>).</summary>
    public bool TakesFusedForward => !training && FusedEncoder.Supports(backbone);

    /// <summary>
    /// As <see cref="forward"/> at inference, the blocks run by the fused inference encoder the text classifier scores with
    /// (each row one window of 1 + G token vectors, no torch dispatch per op): standardised features x [B, F] → outputs [B, outputs].
    /// Call under no_grad where <see cref="TakesFusedForward"/>; up to float rounding the same outputs, and each row's the same
    /// bits whatever the batch.
    /// </summary>
    public unsafe Tensor ForwardFused(Tensor x)
    {
        var tokens = (tokenizer.LinearTokens(x) ?? tokenizer.call(x)).contiguous(); // [B, 1 + G, d]
        int rows = (int)tokens.shape[0], length = (int)tokens.shape[1];
        var pooled = empty(rows, Config.Width);                                  // [B, d]
        var memory = fusedMemory.Take();
        new FusedEncoder(backbone, memory: memory, windowMajor: KernelParallel.Workers > 1)
            .PooledVectors(TensorMemory.Floats(tokens), rows, length, head.Pooling, TensorMemory.Floats(pooled));
        fusedMemory.Return(memory);                                              // not on an exception: a fresh one next time
        GC.KeepAlive(tokens);
        return head.Linear(pooled);                                              // [B, outputs]
    }

    private readonly FusedEncoderMemory.Pool fusedMemory = new();

    /// <summary>Standardised features x [B, F] (NaN = missing) → outputs [B, outputs].</summary>
    public override Tensor forward(Tensor x)
    {
        var tokens = tokenizer.call(x);                                          // [B, 1 + G, d]
        var hidden = backbone.ForwardEmbeddings(tokens, new AttentionContext(Causal: false)); // [B, 1 + G, d]
        return head.Forward(hidden, mask: null);                                 // [B, outputs]
    }
}
