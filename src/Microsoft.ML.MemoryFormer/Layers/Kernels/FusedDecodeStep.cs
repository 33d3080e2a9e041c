using System.Runtime.CompilerServices;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// A whole batch-1 single-token decode step of a MemoryFormer language model without torch dispatch:
/// embedding row → <see cref="FusedDecodeBlock"/> per layer (appending to the KV caches) → final RMSNorm →
/// <see cref="HeadGemv"/>. Replaces ≈ 30 small torch ops per layer per token. Built per generation for one set of
/// caches by <see cref="TryCreate"/>, which returns null whenever the general path must run instead (CUDA, other
/// dtypes, LayerNorm configs, training mode, batches, <see cref="LanguageModel.UseFusedDecode"/> off). The dense baseline
/// takes the same step with <see cref="FusedDenseDecodeBlock"/>, so decode ratios compare equally optimised models; with
/// <see cref="LanguageModel.UseInferencePrecision"/> the head, MemoryFormer's tables and the dense baseline's matrices
/// are read in bf16 or int8.
/// All of the decode step's managed code is here and in <see cref="FusedDecodeBlock"/>; <c>Generation/TokenDecoder.cs</c>
/// is its only caller.
/// </summary>
/// <remarks>Every step first checks that each layer's cache has room for one more position (and that the rotary tables
/// reach it), so a full cache is refused before any cache, scratch vector or logit is written.</remarks>
internal sealed unsafe class FusedDecodeStep
{
    private readonly LanguageModel model;                 // keeps the parameters alive
    private readonly IReadOnlyList<AttentionCache> caches;
    private readonly IFusedDecodeBlock[] blocks;
    private readonly FusedDecodeBlock.Scratch scratch;
    private readonly float* embedding, finalGain, head;
    private readonly Bf16Matrix? head16;
    private readonly Int8Matrix? head8;
    private readonly float finalEpsilon;
    private readonly int width, vocabulary;

    private FusedDecodeStep(LanguageModel model, IReadOnlyList<AttentionCache> caches)
    {
        this.model = model;
        this.caches = caches;
        var c = model.Config;
        (width, vocabulary) = (c.Width, c.VocabularySize);
        blocks = model.Backbone.Blocks.Select(b => c.Kind == TransformerKind.Dense
            ? new FusedDenseDecodeBlock(b, c, model.BFloat16Copy, model.Int8Copy)
            : (IFusedDecodeBlock)new FusedDecodeBlock(b, c, model.UseTableCopies ? model.BFloat16Copy : _ => null,
                model.UseTableCopies ? model.Int8Copy : _ => null, model.UseTwoThreadGathers)).ToArray();
        scratch = new FusedDecodeBlock.Scratch(c);
        embedding = TensorMemory.Floats(model.Backbone.Embedding.weight!);
        var finalNorm = (RmsNorm)model.Backbone.FinalNorm;
        finalGain = TensorMemory.Floats(finalNorm.Weight);
        finalEpsilon = (float)finalNorm.Epsilon;
        head = TensorMemory.Floats(model.Head.weight!);
        head16 = model.BFloat16Copy(model.Head.weight!);
        head8 = model.Int8Copy(model.Head.weight!);
    }

    /// <summary>The fused step for <paramref name="model"/> decoding one sequence into <paramref name="caches"/>, or null.</summary>
    public static FusedDecodeStep? TryCreate(LanguageModel model, IReadOnlyList<AttentionCache>? caches)
    {
        if (caches is null || caches.Count != model.Config.Layers || !model.UseFusedDecode || model.AdaptiveHead is not null || !KernelSettings.Current.UseFusedKernels
            || model.training || caches.Any(c => !c.IsBatchOneCpuFloat32)
            || !model.Backbone.Blocks.All(b => FusedDecodeBlock.Supports(b, model.Config) || FusedDenseDecodeBlock.Supports(b, model.Config))
            || !model.parameters().All(p => TensorMemory.IsCpuFloat32(p) && p.is_contiguous()))
            return null;
        return new FusedDecodeStep(model, caches);
    }

    /// <summary>Next-token logits [1, V] for <paramref name="token"/> at position <c>caches[0].Length</c>; appends to the caches.</summary>
    public Tensor Logits(int token)
    {
        Hidden(token);
        var logits = empty(1, vocabulary, ScalarType.Float32);                  // [1, V]
        if (head8 is not null)
            HeadGemv.Compute(scratch.Normed, 1, head8, TensorMemory.Floats(logits));
        else
            HeadGemv.Compute(scratch.Normed, 1, head, head16 is null ? null : head16.Pointer, vocabulary, width, TensorMemory.Floats(logits));
        GC.KeepAlive(model);
        GC.KeepAlive(head16);
        return logits;
    }

    /// <summary>Embedding → blocks → final norm for <paramref name="token"/>; the result is left in the scratch's normed vector.</summary>
    internal void Hidden(int token)
    {
        if ((uint)token >= (uint)vocabulary)
            throw new ArgumentOutOfRangeException(nameof(token), $"Token id {token} is outside the vocabulary of {vocabulary}.");
        for (int i = 0; i < blocks.Length; i++)
        {
            long position = caches[i].Length;
            if (position >= caches[i].Capacity || position >= blocks[i].RotaryPositions)
                throw new InvalidOperationException($"The KV cache of layer {i} is full: it holds {caches[i].Capacity} positions " +
                    $"(rotary tables: {blocks[i].RotaryPositions}) and position {position} was requested. Start a new sequence, or " +
                    "crop the context to the model's ContextLength before decoding.");
        }
        float* x = scratch.Residual;
        Unsafe.CopyBlock(x, embedding + ((long)token * width), (uint)(width * sizeof(float)));
        for (int i = 0; i < blocks.Length; i++)
            blocks[i].Step(x, caches[i], scratch);
        VectorKernels.RmsNorm(x, finalGain, width, finalEpsilon, scratch.Normed);
    }
}
