using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// A causal language model: backbone + untied LM head (the official code's <c>no-weight-tying</c>; docs/model-spec.md, "Embedding and head"). The head is the only
/// dense matrix left in a MemoryFormer (paper §3.1).
/// </summary>
public sealed class LanguageModel : nn.Module<Tensor, Tensor>
{
    private readonly TransformerBackbone backbone;
    private readonly Linear? head;                          // the full head, or null with the adaptive softmax head
    private readonly AdaptiveSoftmaxHead? adaptive_head;    // MemoryFormerConfig.AdaptiveSoftmaxCutoffs set

    /// <summary>Builds a model of the given architecture with fresh weights (seed torch first for determinism).</summary>
    public LanguageModel(MemoryFormerConfig config) : base(nameof(LanguageModel))
    {
        backbone = new TransformerBackbone(config);
        if (config.AdaptiveSoftmaxCutoffs is null)
        {
            head = nn.Linear(config.Width, config.VocabularySize, hasBias: false);
            using (no_grad()) head.weight!.normal_(0, config.EmbeddingInitStd);
        }
        else
            adaptive_head = new AdaptiveSoftmaxHead(config);
        RegisterComponents();
        Runtime.TorchScope.Keep(this);                                          // built inside a Fit's or a loader's scope
    }

    /// <summary>The architecture.</summary>
    public MemoryFormerConfig Config => backbone.Config;

    /// <summary>
    /// Whether single-token CPU decode steps of a MemoryFormer take the fused managed path (<see cref="FusedDecodeStep"/>)
    /// instead of the general torch path; on by default, off to compare the two.
    /// </summary>
    internal bool UseFusedDecode { get; set; } = true;

    private Dictionary<nint, Bf16Matrix>? bf16Copies;
    private Dictionary<nint, Int8Matrix>? int8Copies;

    /// <summary>The precision of the weights the fused CPU decode step reads (<see cref="UseInferencePrecision"/>).</summary>
    public InferencePrecision InferencePrecision =>
        int8Copies is not null ? InferencePrecision.Int8 : bf16Copies is not null ? InferencePrecision.BFloat16 : InferencePrecision.Float32;

    /// <summary>Whether the fused CPU decode step reads bf16 copies of the dense matrices (<see cref="UseBFloat16Inference"/>).</summary>
    public bool BFloat16Inference => InferencePrecision == InferencePrecision.BFloat16;

    /// <summary>
    /// Bandwidth-lean decode in bf16: <c>UseInferencePrecision(enabled ? BFloat16 : Float32)</c>. Rounds the LM head,
    /// MemoryFormer's Memory Layer tables and the dense baseline's attention and MLP matrices to bf16 copies that the fused batch-1 CPU decode
    /// step reads instead of the fp32 weights, halving the bytes a step streams; fp32 accumulation. False drops the
    /// copies (and any int8 ones). See <see cref="UseInferencePrecision"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model is not on the CPU in float32.</exception>
    public void UseBFloat16Inference(bool enabled = true) =>
        UseInferencePrecision(enabled ? InferencePrecision.BFloat16 : InferencePrecision.Float32);

    /// <summary>
    /// Bandwidth-lean decode: the precision of the weight copies the fused batch-1 CPU decode step reads instead of the
    /// fp32 weights. <see cref="InferencePrecision.BFloat16"/>: bf16 copies of the LM head, of MemoryFormer's Memory Layer
    /// tables and of the dense baseline's attention and MLP matrices, half the bytes. <see cref="InferencePrecision.Int8"/>: int8 row-wise copies
    /// (one fp32 scale per row) of the LM head, of MemoryFormer's Memory Layer tables and of the dense baseline's
    /// matrices, a quarter of the bytes. Activations and accumulation stay fp32. Opt-in, inference only: training,
    /// batched scoring and the general path keep the fp32 weights, which are never changed, so
    /// <see cref="InferencePrecision.Float32"/> drops the copies and gives the fp32 results back exactly. The copies are
    /// a snapshot and are not saved with the model: switching the model to training mode drops them; after the weights
    /// change otherwise (loading into this model), call this again. Speed and accuracy cost are measured in
    /// docs/benchmarks.md (<c>perf decode</c>, <c>perf bf16</c>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="precision"/> is not a defined value (the precision is unchanged).</exception>
    /// <exception cref="InvalidOperationException">The model is not on the CPU in float32 (the model is left in fp32).</exception>
    /// <exception cref="ArgumentException">Int8: a weight holds NaN or ±∞ (the model is left in fp32).</exception>
    public void UseInferencePrecision(InferencePrecision precision)
    {
        if (!Enum.IsDefined(precision))
            throw new ArgumentOutOfRangeException(nameof(precision), precision,
                $"Unknown inference precision {(int)precision}; use {string.Join(", ", Enum.GetNames<InferencePrecision>())}.");
        (bf16Copies, int8Copies) = (null, null);
        if (precision == InferencePrecision.Float32)
            return;
        ThrowIfAdaptiveHead($"{precision} inference copies (the fused decode step reads the full head)");
        var weights = new List<Tensor> { head!.weight! };
        foreach (var block in backbone.Blocks)
        {
            if (Config.Kind == TransformerKind.Dense)
                weights.AddRange([((DenseQkv)block.Attention.Qkv).Projection.weight!, block.Attention.Output!.weight!,
                    ((DenseMlp)block.Ffn).Expand.weight!, ((DenseMlp)block.Ffn).Project.weight!]);
            else if (UseTableCopies && block.Attention.Qkv is MemoryQkv qkv && block.Ffn is MemoryBlock ffn)
                weights.AddRange([qkv.Query.Table, qkv.Key.Table, qkv.Value.Table, ffn.Expand.Table, ffn.Project.Table]);
        }
        var bad = weights.FirstOrDefault(w => !TensorMemory.IsCpuFloat32(w) || !w.is_contiguous());
        if (bad is not null)
            throw new InvalidOperationException($"{precision} inference copies are made from CPU float32 weights; this model has {bad.dtype} on {bad.device_type}. " +
                "Move the model to the CPU in float32 first (model.to(CPU, float32)).");
        if (precision == InferencePrecision.BFloat16)
            bf16Copies = weights.ToDictionary(TensorMemory.Key, Bf16Matrix.From);
        else
            int8Copies = weights.ToDictionary(TensorMemory.Key, Int8Matrix.From);
    }

    /// <summary>Switches training mode; switching it on drops any inference copies, which training would leave stale.</summary>
    public override void train(bool on = true)
    {
        if (on)
            (bf16Copies, int8Copies) = (null, null);
        base.train(on);
    }

    /// <summary>The bf16 copy of <paramref name="weight"/> made by <see cref="UseInferencePrecision"/>, or null.</summary>
    internal Bf16Matrix? BFloat16Copy(Tensor weight) =>
        bf16Copies is not null && TensorMemory.IsCpuFloat32(weight) && bf16Copies.TryGetValue(TensorMemory.Key(weight), out var copy)
            && copy.Rows == weight.shape[0] && copy.Columns == weight.shape[1] ? copy : null;

    /// <summary>The int8 copy of <paramref name="weight"/> made by <see cref="UseInferencePrecision"/>, or null.</summary>
    internal Int8Matrix? Int8Copy(Tensor weight) =>
        int8Copies is not null && TensorMemory.IsCpuFloat32(weight) && int8Copies.TryGetValue(TensorMemory.Key(weight), out var copy)
            && copy.Rows == weight.shape[0] && copy.Columns == weight.shape[1] ? copy : null;

    /// <summary>Whether <see cref="UseInferencePrecision"/>(BFloat16 or Int8) copies the Memory Layer tables too and the
    /// fused decode step reads those copies (on by default; off to measure what they add: <c>perf decode</c>, <c>perf bf16</c>).
    /// Set it before switching the precision.</summary>
    internal bool UseTableCopies { get; set; } = true;

    /// <summary>Whether the fused MemoryFormer decode step splits a block's gathers between two threads (same results
    /// either way). On by default: idle, <c>perf decode-profile --parts blocks</c> measured the six blocks 1.2–1.4× faster
    /// with the split (fp32 1.87 → 1.53 ms, bf16 tables 1.62 → 1.16, int8 tables 1.25 → 0.88; docs/benchmarks.md), though on a
    /// loaded machine the forks made them 1.2–1.6× slower.</summary>
    internal bool UseTwoThreadGathers { get; set; } = true;

    /// <summary>The embedding, blocks and final norm, for fine-tuning with another head.</summary>
    public TransformerBackbone Backbone => backbone;

    /// <summary>The full LM head, W [V, d] without bias.</summary>
    /// <exception cref="NotSupportedException">The model has the adaptive softmax head.</exception>
    internal Linear Head => head ?? throw AdaptiveHeadNotSupported("This operation");

    /// <summary>The adaptive softmax head, or null with the full head.</summary>
    internal AdaptiveSoftmaxHead? AdaptiveHead => adaptive_head;

    /// <summary>Parameters outside the backbone for <paramref name="config"/>: V·d for the full head, less for the adaptive one.</summary>
    internal static double HeadParameterCount(MemoryFormerConfig config) => config.AdaptiveSoftmaxCutoffs is null
        ? (double)config.VocabularySize * config.Width : AdaptiveSoftmaxHead.ParameterCount(config);

    /// <summary>Throws <see cref="NotSupportedException"/> naming <paramref name="what"/> when the model has the adaptive softmax head.</summary>
    internal void ThrowIfAdaptiveHead(string what)
    {
        if (adaptive_head is not null) throw AdaptiveHeadNotSupported(what);
    }

    private static NotSupportedException AdaptiveHeadNotSupported(string what) => new(
        $"{what} needs the full V × d output head, and this model has the adaptive softmax head " +
        $"({nameof(MemoryFormerConfig)}.{nameof(MemoryFormerConfig.AdaptiveSoftmaxCutoffs)} is set). " +
        $"Train with {nameof(MemoryFormerConfig.AdaptiveSoftmaxCutoffs)} = null to use it.");

    /// <summary>Token ids [B, T] → next-token logits [B, T, V] (causal, no cache); with the adaptive softmax head, the
    /// exact log-probabilities, which are valid logits (softmax gives the same distribution).</summary>
    public override Tensor forward(Tensor tokens) => Forward(tokens, AttentionContext.CausalLm);

    /// <summary>Token ids [B, T] → logits [B, T, V] under the given attention context (masks, KV caches).</summary>
    internal Tensor Forward(Tensor tokens, AttentionContext context) => Logits(backbone.Forward(tokens, context)); // [B, T, V]

    /// <summary>
    /// log P(target) for every position, tokens and targets [B, T] → [B, T]. With the adaptive softmax head no [B, T, V]
    /// matrix is built; with the full head, log_softmax of the logits.
    /// </summary>
    internal Tensor TargetLogProbs(Tensor tokens, Tensor targets)
    {
        var hidden = backbone.Forward(tokens, AttentionContext.CausalLm);      // [B, T, d]
        if (adaptive_head is null)
            return F.log_softmax(head!.call(hidden), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1); // [B, T]
        return adaptive_head.TargetLogProbs(hidden.reshape(-1, hidden.shape[^1]), targets.reshape(-1)).view(targets.shape); // [B, T]
    }

    /// <summary>Hidden states [..., d] → logits [..., V] (log-probabilities with the adaptive softmax head).</summary>
    private Tensor Logits(Tensor hidden)
    {
        if (adaptive_head is null) return head!.call(hidden);                   // [..., V]
        var flat = adaptive_head.LogProbs(hidden.reshape(-1, hidden.shape[^1])); // [N, V]
        return flat.view([.. hidden.shape[..^1], flat.shape[1]]);               // [..., V]
    }

    /// <summary>Logits of the last position only, [B, V]: the decode step, where the head is one GEMV per row.</summary>
    internal Tensor ForwardLast(Tensor tokens, AttentionContext context)
    {
        var hidden = backbone.Forward(tokens, context);                          // [B, T, d]
        var last = hidden.select(1, -1);                                          // [B, d]
        if (adaptive_head is not null) return Logits(last);                       // [B, V] log-probabilities
        return HeadGemv.Applies(last, head!.weight!)
            ? HeadGemv.Apply(last, head!.weight!)                                  // [B, V], one pass over the weight
            : head!.call(last);                                                    // [B, V]
    }
}
