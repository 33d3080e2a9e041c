using System.Runtime.CompilerServices;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using static TorchSharp.torch;

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
/// mode, RMSNorm only (<see cref="FusedEncoder.Supports"/>). Holds raw pointers into the block's parameters: build it per call.
/// The per-token passes are in <c>FusedEncoderBlock.TokenPasses.cs</c>, the staged table-major ones in
/// <c>FusedEncoderBlock.TableMajor.cs</c>.
/// </remarks>
internal sealed unsafe partial class FusedEncoderBlock
{
    private readonly TransformerBlock block;            // keeps the parameters alive
    private readonly int width, hidden, chunks, heads, headWidth, rotaryDims;
    private readonly float* attentionGain, ffnGain, normWeight, normBias, cos, sin;
    private readonly float attentionEpsilon, ffnEpsilon;
    private readonly Layer query, key, value, expand, project;

    /// <summary>Reads the block's parameters; <see cref="FusedEncoder.Supports"/> must be true of its backbone.</summary>
    /// <param name="block">The block.</param>
    /// <param name="config">The encoder's configuration.</param>
    /// <param name="bf16">The bf16 copy of a Memory Layer table to gather from instead of the fp32 table, or null
    /// (<c>TextClassifierModel.UseInferencePrecision</c>); null: the fp32 tables.</param>
    public FusedEncoderBlock(TransformerBlock block, MemoryFormerConfig config, Func<Tensor, Bf16Matrix?>? bf16 = null)
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
        (query, key, value) = (new Layer(qkv.Query, bf16), new Layer(qkv.Key, bf16), new Layer(qkv.Value, bf16));
        (expand, project) = (new Layer(ffn.Expand, bf16), new Layer(ffn.Project, bf16));
        Bf16Tables = query.Table16 is not null;
    }

    /// <summary>Whether the gathers read bf16 table copies (then the table-major gathers are not available).</summary>
    public bool Bf16Tables { get; }

    /// <summary>True when this computes blocks of <paramref name="config"/> exactly: MemoryFormer blocks with RMSNorms,
    /// τ+2 ≤ 16 and a head width the attention kernel handles (the parameters' storage is <see cref="FusedEncoder.Supports"/>'s
    /// to check).</summary>
    public static bool SupportsConfig(MemoryFormerConfig config) => FusedDecodeBlock.SupportsConfig(config) && WindowAttention.Supports(config.HeadWidth);

    /// <summary>The attention heads' width hd.</summary>
    public int HeadWidth => headWidth;

    /// <summary>Positions the rotary tables cover: no window may be longer.</summary>
    public long RotaryPositions { get; }

    /// <summary>Whether <see cref="Forward"/> can take the table-major gathers (<see cref="ColumnSliceGather"/>): the model
    /// width and the Memory Block's hidden width are multiples of its slice.</summary>
    public bool TableMajor => ColumnSliceGather.Supports(width) && ColumnSliceGather.Supports(hidden) && !Bf16Tables;

    /// <summary>Floats of the scratch <see cref="Forward"/> needs for <paramref name="n"/> tokens with table-major gathers.</summary>
    public long ScratchFloats(int n) => (long)n * (hidden + (2L * chunks));

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
    /// <param name="scratch"><see cref="ScratchFloats"/>(N) floats for the table-major gathers (<see cref="TableMajor"/>
    /// must be true), or null for the token-major ones; both give bit-identical results.</param>
    /// <param name="profile">When set, the time of each pass is added to it.</param>
    /// <param name="projected">Token-major scratch: when set (with <paramref name="slots"/>), token t's Q, K and V before
    /// rotary are read from row slots[t] of these [U, 3·d] rows (<see cref="Project"/>) instead of computed from x.</param>
    /// <param name="slots">The row of <paramref name="projected"/> of each of the N tokens.</param>
    public void Forward(float* x, int[] starts, float* q, float* k, float* v, float* attended, float* scratch, ScoringProfile? profile = null,
        float* projected = null, int[]? slots = null)
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
        if (scratch is not null && !TableMajor)
            throw new ArgumentException($"Table-major gathers need widths that are multiples of {ColumnSliceGather.Slice}; got d = {width}, hidden = {hidden}.", nameof(scratch));
        nint xa = (nint)x, qa = (nint)q, ka = (nint)k, va = (nint)v, ya = (nint)attended;
        long tokenWork = 3L * chunks * width;
        long clock = Stopwatch.GetTimestamp();
        if (projected is not null && slots is not null)
        {
            nint pa = (nint)projected;
            KernelParallel.For(n, 3L * width, (start, end) => ProjectedInputs((float*)pa, slots, positions, start, end, (float*)qa, (float*)ka, (float*)va));
        }
        else if (scratch is null && Runtime.KernelSettings.Current.PairedTokens)
            KernelParallel.For(n, tokenWork, (start, end) => AttentionInputPairs((float*)xa, positions, start, end, (float*)qa, (float*)ka, (float*)va));
        else if (scratch is null)
            KernelParallel.For(n, tokenWork, (start, end) => AttentionInputs((float*)xa, positions, start, end, (float*)qa, (float*)ka, (float*)va));
        else
            TableMajorAttentionInputs(x, positions, q, k, v, scratch, profile);
        if (profile is not null) profile.FusedAttentionInputsMs += Lap(ref clock);
        WindowAttention.Run(q, k, v, attended, heads, headWidth, starts, Simd);
        if (profile is not null) profile.FusedAttentionMs += Lap(ref clock);
        if (scratch is null && Runtime.KernelSettings.Current.PairedTokens)
            KernelParallel.For(n, tokenWork, (start, end) => FeedforwardPairs((float*)xa, (float*)ya, start, end));
        else if (scratch is null)
            KernelParallel.For(n, tokenWork, (start, end) => Feedforward((float*)xa, (float*)ya, start, end));
        else
            TableMajorFeedforward(x, attended, n, q, scratch, profile);
        if (profile is not null) profile.FusedFeedforwardMs += Lap(ref clock);
        GC.KeepAlive(block);
    }

    /// <summary>
    /// The block in place on the tokens of windows [first, last) only, on the calling thread: the three passes of
    /// <see cref="Forward"/> over those tokens (Q/K/V, attention per window, Memory Block), the same per-token arithmetic
    /// and so the same bits. Windows never see each other, so a caller can run every block over a few windows while
    /// their activations stay in cache, with one fork/join for all of them (<see cref="FusedEncoder"/>).
    /// </summary>
    /// <param name="x">Hidden states [N, d] of the whole group; rows of windows [first, last) are replaced by the block's output.</param>
    /// <param name="starts">Window starts, W + 1 entries, the last N.</param>
    /// <param name="positions">Each token's position in its window.</param>
    /// <param name="first">First window.</param>
    /// <param name="last">One past the last window.</param>
    /// <param name="q">Working buffer [N, d] (rows of these windows used).</param>
    /// <param name="k">Working buffer [N, d].</param>
    /// <param name="v">Working buffer [N, d].</param>
    /// <param name="attended">Working buffer [N, d].</param>
    /// <param name="attentionScratch"><see cref="WindowAttention.ScratchFloats"/> floats for the longest window.</param>
    /// <param name="ticks">When set, the Stopwatch ticks of the three passes are added to its first three entries.</param>
    /// <param name="projected">As in <see cref="Forward"/>: Q, K, V before rotary of slots[t], or null.</param>
    /// <param name="slots">As in <see cref="Forward"/>.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void ForwardWindows(float* x, int[] starts, int[] positions, int first, int last, float* q, float* k, float* v, float* attended,
        float* attentionScratch, long[]? ticks, float* projected = null, int[]? slots = null)
    {
        int start = starts[first], end = starts[last];
        long clock = Stopwatch.GetTimestamp();
        bool paired = Runtime.KernelSettings.Current.PairedTokens;
        if (projected is not null && slots is not null)
            ProjectedInputs(projected, slots, positions, start, end, q, k, v);
        else if (paired)
            AttentionInputPairs(x, positions, start, end, q, k, v);
        else
            AttentionInputs(x, positions, start, end, q, k, v);
        Tick(ticks, 0, ref clock);
        for (int w = first; w < last; w++)
            WindowAttention.Window(q, k, v, attended, heads, headWidth, starts[w], starts[w + 1] - starts[w], attentionScratch, Simd);
        Tick(ticks, 1, ref clock);
        if (paired)
            FeedforwardPairs(x, attended, start, end);
        else
            Feedforward(x, attended, start, end);
        Tick(ticks, 2, ref clock);
        GC.KeepAlive(block);
    }

    private static void Tick(long[]? ticks, int part, ref long clock)
    {
        if (ticks is null)
            return;
        long now = Stopwatch.GetTimestamp();
        ticks[part] += now - clock;
        clock = now;
    }

    /// <summary>Use the SIMD per-token kernels (<see cref="EncoderKernels"/>, the default) and the AVX-512 attention kernel
    /// rather than the scalar decode ones (<see cref="VectorKernels"/>, <see cref="RowKernels"/>) and the 256-bit attention
    /// (kept for the interleaved benchmark).</summary>
    public bool Simd { get; set; } = true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void RmsNorm(float* x, float* gain, int d, float epsilon, float* y)
    {
        if (Simd) EncoderKernels.RmsNorm(x, gain, d, epsilon, y);
        else VectorKernels.RmsNorm(x, gain, d, epsilon, y);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void LayerNorm(float* x, float* weight, float* bias, int n, float epsilon, float* y)
    {
        if (Simd) EncoderKernels.LayerNorm(x, weight, bias, n, epsilon, y);
        else VectorKernels.LayerNorm(x, weight, bias, n, epsilon, y);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Rotary(float* x, int heads, int headWidth, int r, float* cos, float* sin)
    {
        if (Simd) EncoderKernels.Rotary(x, heads, headWidth, r, cos, sin);
        else VectorKernels.Rotary(x, heads, headWidth, r, cos, sin);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void BagSum(float* src, int h, int* idx, float* w, int count, float* dst, float* init)
    {
        if (Simd) EncoderKernels.BagSum(src, h, idx, w, count, dst, init);
        else RowKernels.WeightedBagSum(src, h, idx, w, count, dst, init);
    }

    /// <summary>Milliseconds since <paramref name="clock"/>, which moves to now.</summary>
    internal static double Lap(ref long clock)
    {
        long now = Stopwatch.GetTimestamp();
        double ms = (now - clock) * 1000.0 / Stopwatch.Frequency;
        clock = now;
        return ms;
    }

    /// <summary>One layer's gather for one token: from its bf16 copy where there is one, else the fp32 table.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Bag(Layer layer, int h, int* index, float* weights, float* output)
    {
        ushort* table16 = layer.Table16;
        if (table16 is not null) EncoderKernels.BagSumBf16(table16, h, index, weights, chunks, output, layer.Bias);
        else BagSum(layer.Table, h, index, weights, chunks, output, layer.Bias);
    }

    /// <summary>Q, K and V of one token under their one hash: in one walk of the bag (<see cref="EncoderKernels.BagSum3"/>, or
    /// <see cref="EncoderKernels.BagSum3Bf16"/> over bf16 copies) with the SIMD kernels and <see cref="Runtime.KernelSettings.FusedQkvBags"/>,
    /// else one gather per table; the same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Bags(int* index, float* weights, float* q, float* k, float* v)
    {
        if (Simd && Runtime.KernelSettings.Current.FusedQkvBags)
        {
            ushort* q16 = query.Table16, k16 = key.Table16, v16 = value.Table16;
            if (q16 is null && k16 is null && v16 is null)
            {
                EncoderKernels.BagSum3(query.Table, key.Table, value.Table, width, index, weights, chunks, q, k, v, query.Bias, key.Bias, value.Bias);
                return;
            }
            if (q16 is not null && k16 is not null && v16 is not null)
            {
                EncoderKernels.BagSum3Bf16(q16, k16, v16, width, index, weights, chunks, q, k, v, query.Bias, key.Bias, value.Bias);
                return;
            }
        }
        Bag(query, width, index, weights, q);
        Bag(key, width, index, weights, k);
        Bag(value, width, index, weights, v);
    }


    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Hash(float* input, Layer layer, long* rows, int* index, float* weights)
    {
        if (layer.ScoringHash)
        {
            ScoringSignHash.Hash(input, layer.Bits, layer.L1Scaled, layer.Scale, index, weights);   // the same bits
            return;
        }
        SignHashKernel.HashRow(input, chunks, layer.Bits, layer.L1Scaled, layer.Scale, rows, weights, null);
        for (int c = 0; c < chunks; c++)
            index[c] = (int)rows[c];
    }

    /// <summary>One Memory Layer's table, bias and hash settings as raw memory.</summary>
    private sealed class Layer(MemoryLayer layer, Func<Tensor, Bf16Matrix?>? bf16)
    {
        private readonly Bf16Matrix? copy = bf16?.Invoke(layer.Table);         // kept alive with the block
        public readonly float* Table = TensorMemory.Floats(layer.Table);
        public ushort* Table16 => copy is null ? null : copy.Pointer;
        public readonly float* Bias = TensorMemory.Floats(layer.Bias);
        public readonly int Bits = layer.BitsPerChunk;
        public readonly bool L1Scaled = layer.WeightFunction == HashWeightFunction.L1ScaledSigmoidProduct;
        public readonly float Scale = -2f / (layer.WeightFunction == HashWeightFunction.L1ScaledSigmoidProduct ? 1f : (float)layer.Temperature);

        /// <summary>Whether this call's hashes take <see cref="ScoringSignHash"/> (read once per encoder, as the other switches).</summary>
        public readonly bool ScoringHash = ScoringSignHash.Applies(layer.ChunkCount, layer.BitsPerChunk);
    }
}
