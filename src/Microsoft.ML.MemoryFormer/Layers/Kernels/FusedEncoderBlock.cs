using System.Runtime.CompilerServices;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// One MemoryFormer <see cref="TransformerBlock"/> over many tokens at once for inference (bidirectional encoders:
/// classification scoring), as managed code over the block's own parameter memory with no torch dispatch and no
/// autograd: the batched counterpart of <see cref="FusedDecodeBlock"/>, with the same per-token arithmetic.
/// Tokens are packed, unpadded windows [N, d] back to back; each window starts at rotary position 0 and attends
/// only to itself (<see cref="WindowAttention"/>).
/// </summary>
/// <remarks>
/// Three passes: (1) per token, parallel over tokens: RMSNorm → sign hash → Q, K, V rows (one shared hash, bias folded)
/// → rotary on Q and K; (2) attention per (window, head); (3) per token: residual, RMSNorm → hash → ML₁ → LayerNorm →
/// hash (τ+2 bits) → ML₂ → residual. Every intermediate of a token stays in a few hundred bytes of stack. CPU fp32, eval
/// mode, RMSNorm only (<see cref="Supports"/>). Holds raw pointers into the block's parameters: build it per call.
/// </remarks>
internal sealed unsafe class FusedEncoderBlock
{
    private readonly TransformerBlock block;            // keeps the parameters alive
    private readonly int width, hidden, chunks, heads, headWidth, rotaryDims;
    private readonly float* attentionGain, ffnGain, normWeight, normBias, cos, sin;
    private readonly float attentionEpsilon, ffnEpsilon;
    private readonly Layer query, key, value, expand, project;

    /// <summary>Reads the block's parameters; <see cref="Supports"/> must be true.</summary>
    public FusedEncoderBlock(TransformerBlock block, MemoryFormerConfig config)
    {
        this.block = block;
        var qkv = (MemoryQkv)block.Attention.Qkv;
        var ffn = (MemoryBlock)block.Ffn;
        (width, hidden, chunks) = (config.Width, config.BlockHiddenWidth, config.ChunkCount);
        (heads, headWidth, rotaryDims) = (config.Heads, config.HeadWidth, block.Attention.Rotary.RotaryDims);
        var (attentionNorm, ffnNorm) = ((RmsNorm)block.AttentionNorm, (RmsNorm)block.FfnNorm);
        attentionGain = TensorMemory.Floats(attentionNorm.Weight);
        attentionEpsilon = (float)attentionNorm.Epsilon;
        ffnGain = TensorMemory.Floats(ffnNorm.Weight);
        ffnEpsilon = (float)ffnNorm.Epsilon;
        normWeight = TensorMemory.Floats(ffn.Norm.weight!);
        normBias = TensorMemory.Floats(ffn.Norm.bias!);
        cos = TensorMemory.Floats(block.Attention.Rotary.Tables.Cos);
        sin = TensorMemory.Floats(block.Attention.Rotary.Tables.Sin);
        RotaryPositions = block.Attention.Rotary.Tables.Cos.shape[0];
        (query, key, value) = (new Layer(qkv.Query), new Layer(qkv.Key), new Layer(qkv.Value));
        (expand, project) = (new Layer(ffn.Expand), new Layer(ffn.Project));
    }

    /// <summary>True when this computes the block exactly: a MemoryFormer block with RMSNorms, contiguous CPU fp32
    /// parameters, τ+2 ≤ 16 and a head width the attention kernel handles.</summary>
    public static bool Supports(TransformerBlock block, MemoryFormerConfig config) =>
        FusedDecodeBlock.Supports(block, config) && WindowAttention.Supports(config.HeadWidth);

    /// <summary>Positions the rotary tables cover: no window may be longer.</summary>
    public long RotaryPositions { get; }

    /// <summary>
    /// Runs the block in place on x [N, d], windows [starts[w], starts[w+1]). <paramref name="q"/>, <paramref name="k"/>,
    /// <paramref name="v"/> and <paramref name="attended"/> are working buffers of N·d floats each.
    /// </summary>
    /// <param name="x">Hidden states [N, d], replaced by the block's output.</param>
    /// <param name="starts">Window starts, W + 1 entries, the last N.</param>
    /// <param name="q">Working buffer [N, d].</param>
    /// <param name="k">Working buffer [N, d].</param>
    /// <param name="v">Working buffer [N, d].</param>
    /// <param name="attended">Working buffer [N, d].</param>
    /// <param name="profile">When set, the time of each pass is added to it.</param>
    public void Forward(float* x, int[] starts, float* q, float* k, float* v, float* attended, ScoringProfile? profile = null)
    {
        int n = starts[^1];
        var positions = new int[n];
        for (int w = 0; w + 1 < starts.Length; w++)
        {
            if (starts[w + 1] - starts[w] > RotaryPositions)
                throw new ArgumentException($"A window of {starts[w + 1] - starts[w]} tokens is longer than the {RotaryPositions} rotary positions.", nameof(starts));
            for (int t = starts[w]; t < starts[w + 1]; t++)
                positions[t] = t - starts[w];
        }
        nint xa = (nint)x, qa = (nint)q, ka = (nint)k, va = (nint)v, ya = (nint)attended;
        long tokenWork = 3L * chunks * width;
        long clock = Stopwatch.GetTimestamp();
        KernelParallel.For(n, tokenWork, (start, end) => AttentionInputs((float*)xa, positions, start, end, (float*)qa, (float*)ka, (float*)va));
        if (profile is not null) profile.FusedAttentionInputsMs += Lap(ref clock);
        WindowAttention.Run(q, k, v, attended, heads, headWidth, starts);
        if (profile is not null) profile.FusedAttentionMs += Lap(ref clock);
        KernelParallel.For(n, tokenWork, (start, end) => Feedforward((float*)xa, (float*)ya, start, end));
        if (profile is not null) profile.FusedFeedforwardMs += Lap(ref clock);
        GC.KeepAlive(block);
    }

    /// <summary>Milliseconds since <paramref name="clock"/>, which moves to now.</summary>
    internal static double Lap(ref long clock)
    {
        long now = Stopwatch.GetTimestamp();
        double ms = (now - clock) * 1000.0 / Stopwatch.Frequency;
        clock = now;
        return ms;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void AttentionInputs(float* x, int[] positions, int start, int end, float* q, float* k, float* v)
    {
        float* normed = stackalloc float[width];
        float* weights = stackalloc float[chunks];
        long* rows = stackalloc long[chunks];
        int* index = stackalloc int[chunks];
        for (int t = start; t < end; t++)
        {
            long at = (long)t * width;
            VectorKernels.RmsNorm(x + at, attentionGain, width, attentionEpsilon, normed);
            Hash(normed, value, rows, index, weights);                          // one hash for Q, K, V
            RowKernels.WeightedBagSum(query.Table, width, index, weights, chunks, q + at, query.Bias);
            RowKernels.WeightedBagSum(key.Table, width, index, weights, chunks, k + at, key.Bias);
            RowKernels.WeightedBagSum(value.Table, width, index, weights, chunks, v + at, value.Bias);
            long rotary = (long)positions[t] * rotaryDims;
            VectorKernels.Rotary(q + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
            VectorKernels.Rotary(k + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Feedforward(float* x, float* attended, int start, int end)
    {
        float* normed = stackalloc float[width];
        float* output = stackalloc float[width];
        float* inner = stackalloc float[hidden];
        float* innerNormed = stackalloc float[hidden];
        float* weights = stackalloc float[chunks];
        long* rows = stackalloc long[chunks];
        int* index = stackalloc int[chunks];
        for (int t = start; t < end; t++)
        {
            float* row = x + ((long)t * width);
            RowKernels.Add(attended + ((long)t * width), row, width);         // z = x + Attn(Norm(x))
            VectorKernels.RmsNorm(row, ffnGain, width, ffnEpsilon, normed);
            Hash(normed, expand, rows, index, weights);
            RowKernels.WeightedBagSum(expand.Table, hidden, index, weights, chunks, inner, expand.Bias);   // [K·(τ+2)]
            VectorKernels.LayerNorm(inner, normWeight, normBias, hidden, (float)MemoryBlock.NormEpsilon, innerNormed);
            Hash(innerNormed, project, rows, index, weights);                  // K chunks of τ+2 bits
            RowKernels.WeightedBagSum(project.Table, width, index, weights, chunks, output, project.Bias);
            RowKernels.Add(output, row, width);                                // out = z + FFN(Norm(z))
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Hash(float* input, Layer layer, long* rows, int* index, float* weights)
    {
        SignHashKernel.HashRow(input, chunks, layer.Bits, layer.L1Scaled, layer.Scale, rows, weights, null);
        for (int c = 0; c < chunks; c++)
            index[c] = (int)rows[c];
    }

    /// <summary>One Memory Layer's table, bias and hash settings as raw memory.</summary>
    private sealed class Layer(MemoryLayer layer)
    {
        public readonly float* Table = TensorMemory.Floats(layer.Table);
        public readonly float* Bias = TensorMemory.Floats(layer.Bias);
        public readonly int Bits = layer.BitsPerChunk;
        public readonly bool L1Scaled = layer.WeightFunction == HashWeightFunction.L1ScaledSigmoidProduct;
        public readonly float Scale = -2f / (layer.WeightFunction == HashWeightFunction.L1ScaledSigmoidProduct ? 1f : (float)layer.Temperature);
    }
}
