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

    private Dictionary<nint, Bf16Matrix>? bf16Copies;

    /// <summary>Whether the fused CPU decode step reads bf16 copies of the dense matrices (<see cref="UseBFloat16Inference"/>).</summary>
    public bool BFloat16Inference => bf16Copies is not null;

    /// <summary>
    /// Bandwidth-lean decode: with <paramref name="enabled"/> true, rounds the LM head (and, for the dense baseline, the
    /// attention and MLP matrices) to bf16 copies that the fused batch-1 CPU decode step reads instead of the fp32
    /// weights, halving the bytes a step streams; fp32 accumulation. Opt-in, inference only: training, batched scoring
    /// and the general path keep the fp32 weights. The copies are a snapshot: switching the model to training mode drops
    /// them; after the weights change otherwise (loading into this model), call this again. MemoryFormer's tables stay
    /// fp32 (a decode step reads only K rows of each). False drops the copies. Speed and accuracy cost are measured in
    /// docs/benchmarks.md (<c>perf decode</c>, <c>perf bf16</c>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The model is not on the CPU in float32.</exception>
    public void UseBFloat16Inference(bool enabled = true)
    {
        if (!enabled)
        {
            bf16Copies = null;
            return;
        }
        var weights = new List<Tensor> { head.weight! };
        if (Config.Kind == TransformerKind.Dense)
            foreach (var block in backbone.Blocks)
            {
                weights.Add(((DenseQkv)block.Attention.Qkv).Projection.weight!);
                weights.Add(block.Attention.Output!.weight!);
                weights.Add(((DenseMlp)block.Ffn).Expand.weight!);
                weights.Add(((DenseMlp)block.Ffn).Project.weight!);
            }
        var bad = weights.FirstOrDefault(w => !TensorMemory.IsCpuFloat32(w) || !w.is_contiguous());
        if (bad is not null)
            throw new InvalidOperationException($"bf16 inference copies are made from CPU float32 weights; this model has {bad.dtype} on {bad.device_type}. " +
                "Move the model to the CPU in float32 first (model.to(CPU, float32)).");
        bf16Copies = weights.ToDictionary(TensorMemory.Key, Bf16Matrix.From);
    }

    /// <summary>Switches training mode; switching it on drops any bf16 inference copies, which training would leave stale.</summary>
    public override void train(bool on = true)
    {
        if (on)
            bf16Copies = null;
        base.train(on);
    }

    /// <summary>The bf16 copy of <paramref name="weight"/> made by <see cref="UseBFloat16Inference"/>, or null.</summary>
    internal Bf16Matrix? BFloat16Copy(Tensor weight) =>
        bf16Copies is not null && TensorMemory.IsCpuFloat32(weight) && bf16Copies.TryGetValue(TensorMemory.Key(weight), out var copy)
            && copy.Rows == weight.shape[0] && copy.Columns == weight.shape[1] ? copy : null;

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
