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

    /// <summary>True when this computes the block exactly: a MemoryFormer block with RMSNorms, contiguous CPU fp32
    /// parameters, τ+2 ≤ 16 and a head width the attention kernel handles.</summary>
    public static bool Supports(TransformerBlock block, MemoryFormerConfig config) =>
        FusedDecodeBlock.Supports(block, config) && WindowAttention.Supports(config.HeadWidth);

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

    /// <summary>Q, K, V of all tokens: the hashes first (per token), then each table slice by slice over every token, then rotary.</summary>
    private void TableMajorAttentionInputs(float* x, int[] positions, float* q, float* k, float* v, float* scratch, ScoringProfile? profile)
    {
        int n = positions.Length;
        float* weights = scratch + ((long)n * hidden);
        int* rows = (int*)(weights + ((long)n * chunks));
        nint xa = (nint)x, wa = (nint)weights, ra = (nint)rows;
        long clock = Stopwatch.GetTimestamp();
        KernelParallel.For(n, (long)width * 8, (start, end) =>
        {
            float* normed = stackalloc float[width];
            long* wide = stackalloc long[chunks];
            for (int t = start; t < end; t++)
            {
                RmsNorm((float*)xa + ((long)t * width), attentionGain, width, attentionEpsilon, normed);
                HashInto(normed, value, wide, (int*)ra + ((long)t * chunks), (float*)wa + ((long)t * chunks));
            }
        });
        if (profile is not null) profile.FusedHashMs += Lap(ref clock);
        Gather(
        [
            new((nint)query.Table, (nint)query.Bias, (nint)q, (nint)q, width, false),
            new((nint)key.Table, (nint)key.Bias, (nint)k, (nint)k, width, false),
            new((nint)value.Table, (nint)value.Bias, (nint)v, (nint)v, width, false),
        ], rows, weights, n, 1 << value.Bits);
        if (profile is not null) profile.FusedGatherMs += Lap(ref clock);
        nint qa = (nint)q, ka = (nint)k;
        KernelParallel.For(n, (long)width * 4, (start, end) =>
        {
            for (int t = start; t < end; t++)
            {
                long at = (long)t * width, rotary = (long)positions[t] * rotaryDims;
                Rotary((float*)qa + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
                Rotary((float*)ka + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
            }
        });
        if (profile is not null) profile.FusedRotaryMs += Lap(ref clock);
    }

    /// <summary>Residual, then the Memory Block of all tokens: ML₁ and ML₂ each hashed per token and gathered table-major;
    /// <paramref name="partial"/> (N·d floats) holds ML₂'s partial sums between chunk groups.</summary>
    private void TableMajorFeedforward(float* x, float* attended, int n, float* partial, float* scratch, ScoringProfile? profile)
    {
        float* inner = scratch;
        float* weights = scratch + ((long)n * hidden);
        int* rows = (int*)(weights + ((long)n * chunks));
        nint xa = (nint)x, ya = (nint)attended, ia = (nint)inner, wa = (nint)weights, ra = (nint)rows;
        long clock = Stopwatch.GetTimestamp();
        KernelParallel.For(n, (long)width * 8, (start, end) =>
        {
            float* normed = stackalloc float[width];
            long* wide = stackalloc long[chunks];
            for (int t = start; t < end; t++)
            {
                float* row = (float*)xa + ((long)t * width);
                RowKernels.Add((float*)ya + ((long)t * width), row, width);     // z = x + Attn(Norm(x))
                RmsNorm(row, ffnGain, width, ffnEpsilon, normed);
                HashInto(normed, expand, wide, (int*)ra + ((long)t * chunks), (float*)wa + ((long)t * chunks));
            }
        });
        if (profile is not null) profile.FusedHashMs += Lap(ref clock);
        Gather([new((nint)expand.Table, (nint)expand.Bias, (nint)inner, (nint)inner, hidden, false)], rows, weights, n, 1 << expand.Bits);
        if (profile is not null) profile.FusedGatherMs += Lap(ref clock);
        KernelParallel.For(n, (long)hidden * 8, (start, end) =>
        {
            float* innerNormed = stackalloc float[hidden];
            long* wide = stackalloc long[chunks];
            for (int t = start; t < end; t++)
            {
                LayerNorm((float*)ia + ((long)t * hidden), normWeight, normBias, hidden, (float)MemoryBlock.NormEpsilon, innerNormed);
                HashInto(innerNormed, project, wide, (int*)ra + ((long)t * chunks), (float*)wa + ((long)t * chunks));  // τ+2 bits
            }
        });
        if (profile is not null) profile.FusedHashMs += Lap(ref clock);
        Gather([new((nint)project.Table, (nint)project.Bias, (nint)x, (nint)partial, width, true)], rows, weights, n, 1 << project.Bits);
        if (profile is not null) profile.FusedGatherMs += Lap(ref clock);
    }

    /// <summary>The staged gathers: table-major (<see cref="ColumnSliceGather"/>) or token by token, parallel over tokens.</summary>
    private void Gather(ColumnSliceGather.Target[] targets, int* rows, float* weights, int n, int rowsPerChunk)
    {
        if (TableMajorGathers)
        {
            ColumnSliceGather.Run(targets, rows, weights, n, chunks, rowsPerChunk);
            return;
        }
        nint ra = (nint)rows, wa = (nint)weights;
        int widest = targets.Max(t => t.Width);
        KernelParallel.For(n, (long)chunks * targets.Sum(t => t.Width), (start, end) =>
        {
            float* sum = stackalloc float[widest];
            foreach (var target in targets)
            {
                int h = target.Width;
                for (int t = start; t < end; t++)
                {
                    float* output = (float*)target.Output + ((long)t * h);
                    if (target.AddToOutput)
                    {
                        BagSum((float*)target.Table, h, (int*)ra + ((long)t * chunks), (float*)wa + ((long)t * chunks), chunks, sum, (float*)target.Bias);
                        RowKernels.Add(sum, output, h);
                    }
                    else
                        BagSum((float*)target.Table, h, (int*)ra + ((long)t * chunks), (float*)wa + ((long)t * chunks), chunks, output, (float*)target.Bias);
                }
            }
        });
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

    /// <summary>With staged passes (<see cref="Forward"/> given scratch): gather table-major (true) or token by token.</summary>
    public bool TableMajorGathers { get; set; } = true;

    /// <summary>One token's hash into int rows and weights (<paramref name="wide"/>: K longs of scratch).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void HashInto(float* input, Layer layer, long* wide, int* rows, float* weights)
    {
        SignHashKernel.HashRow(input, chunks, layer.Bits, layer.L1Scaled, layer.Scale, wide, weights, null);
        for (int c = 0; c < chunks; c++)
            rows[c] = (int)wide[c];
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

    /// <summary>
    /// Q, K, V before rotary of the hidden rows x[ids[i]] (x [·, d], e.g. the embedding table) into rows [count, 3·d] (Q,
    /// then K, then V of a row side by side): the first pass of <see cref="Forward"/> without rotary, the same kernels and
    /// so the same bits. For the first block, whose input is a token's embedding row, they depend on the token id alone,
    /// so the encoder computes them once per distinct id (<see cref="FusedEncoder"/>).
    /// </summary>
    public void Project(float* x, int[] ids, int count, float* rows)
    {
        nint xa = (nint)x, ra = (nint)rows;
        KernelParallel.For(count, 3L * chunks * width, (start, end) => ProjectRange((float*)xa, ids, start, end, (float*)ra));
        GC.KeepAlive(block);
    }

    /// <summary>
    /// What <see cref="Project"/>'s rows are computed from and how, for a caller that keeps them across calls: each parameter of the
    /// block (its memory address, size and libtorch version counter, <see cref="TableVersion"/>), the bf16 copies gathered from, the
    /// kernels (<see cref="Simd"/>, the Q/K/V walk and the hash switches), appended to <paramref name="into"/>. Null where version
    /// counters cannot be read: then a change of the weights could not be seen.
    /// </summary>
    public List<long>? ProjectionKey(List<long> into)
    {
        if (!TableVersion.IsAvailable) return null;
        foreach (var p in block.parameters())
            into.AddRange([(long)TensorMemory.Address(p), p.numel(), TableVersion.Of(p)]);
        var settings = Runtime.KernelSettings.Current;
        into.AddRange([(long)query.Table16, (long)key.Table16, (long)value.Table16, Simd ? 1 : 0, settings.FusedQkvBags ? 1 : 0,
            settings.WideInferenceHash ? 1 : 0, settings.LeanWideHash ? 1 : 0, BitConverter.SingleToInt32Bits(attentionEpsilon)]);
        return into;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ProjectRange(float* x, int[] ids, int start, int end, float* rows)
    {
        float* normed = stackalloc float[width];
        float* weights = stackalloc float[chunks];
        long* wide = stackalloc long[chunks];
        int* index = stackalloc int[chunks];
        for (int i = start; i < end; i++)
        {
            float* row = rows + (3L * i * width);
            RmsNorm(x + ((long)ids[i] * width), attentionGain, width, attentionEpsilon, normed);
            Hash(normed, value, wide, index, weights);                           // one hash for Q, K, V
            Bags(index, weights, row, row + width, row + (2 * width));
        }
    }

    /// <summary>The first pass from rows <see cref="Project"/> made: copy token t's row slots[t], rotary on Q and K.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ProjectedInputs(float* projected, int[] slots, int[] positions, int start, int end, float* q, float* k, float* v)
    {
        for (int t = start; t < end; t++)
        {
            long at = (long)t * width;
            float* row = projected + (3L * slots[t] * width);
            EncoderKernels.Copy(row, q + at, width);
            EncoderKernels.Copy(row + width, k + at, width);
            EncoderKernels.Copy(row + (2 * width), v + at, width);
            long rotary = (long)positions[t] * rotaryDims;
            Rotary(q + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
            Rotary(k + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
        }
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
            RmsNorm(x + at, attentionGain, width, attentionEpsilon, normed);
            Hash(normed, value, rows, index, weights);                          // one hash for Q, K, V
            Bags(index, weights, q + at, k + at, v + at);
            long rotary = (long)positions[t] * rotaryDims;
            Rotary(q + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
            Rotary(k + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
        }
    }

    /// <summary>
    /// <see cref="Feedforward"/> two tokens at a time, each step of the two issued back to back (<see cref="Runtime.KernelSettings.PairedTokens"/>):
    /// a token's Memory Block is a chain of dependent steps (norm, hash, gather from L3, LayerNorm, hash, gather) too long for the
    /// out-of-order window to reach into the next token, so one token's latencies hid nothing; side by side the two chains overlap.
    /// Each token's arithmetic is unchanged, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void FeedforwardPairs(float* x, float* attended, int start, int end)
    {
        float* normed = stackalloc float[2 * width];
        float* output = stackalloc float[2 * width];
        float* inner = stackalloc float[2 * hidden];
        float* innerNormed = stackalloc float[2 * hidden];
        float* weights = stackalloc float[2 * chunks];
        long* rows = stackalloc long[2 * chunks];
        int* index = stackalloc int[2 * chunks];
        float* normed1 = normed + width, output1 = output + width, inner1 = inner + hidden, innerNormed1 = innerNormed + hidden, weights1 = weights + chunks;
        long* rows1 = rows + chunks;
        int* index1 = index + chunks;
        float epsilon = (float)MemoryBlock.NormEpsilon;
        int t = start;
        for (; t + 2 <= end; t += 2)
        {
            float* row = x + ((long)t * width), row1 = row + width;
            RowKernels.Add(attended + ((long)t * width), row, width);         // z = x + Attn(Norm(x))
            RowKernels.Add(attended + ((long)(t + 1) * width), row1, width);
            RmsNorm(row, ffnGain, width, ffnEpsilon, normed);
            RmsNorm(row1, ffnGain, width, ffnEpsilon, normed1);
            Hash(normed, expand, rows, index, weights);
            Hash(normed1, expand, rows1, index1, weights1);
            Bag(expand, hidden, index, weights, inner);                        // [K·(τ+2)]
            Bag(expand, hidden, index1, weights1, inner1);
            if (Simd && Runtime.KernelSettings.Current.PairedLayerNorm)
                EncoderKernels.LayerNormPair(inner, inner1, normWeight, normBias, hidden, epsilon, innerNormed, innerNormed1);   // the same bits
            else
            {
                LayerNorm(inner, normWeight, normBias, hidden, epsilon, innerNormed);
                LayerNorm(inner1, normWeight, normBias, hidden, epsilon, innerNormed1);
            }
            Hash(innerNormed, project, rows, index, weights);                  // K chunks of τ+2 bits
            Hash(innerNormed1, project, rows1, index1, weights1);
            Bag(project, width, index, weights, output);
            Bag(project, width, index1, weights1, output1);
            RowKernels.Add(output, row, width);                                // out = z + FFN(Norm(z))
            RowKernels.Add(output1, row1, width);
        }
        if (t < end)
            Feedforward(x, attended, t, end);
    }

    /// <summary><see cref="AttentionInputs"/> two tokens at a time, as <see cref="FeedforwardPairs"/>: the same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void AttentionInputPairs(float* x, int[] positions, int start, int end, float* q, float* k, float* v)
    {
        float* normed = stackalloc float[2 * width];
        float* weights = stackalloc float[2 * chunks];
        long* rows = stackalloc long[2 * chunks];
        int* index = stackalloc int[2 * chunks];
        float* normed1 = normed + width, weights1 = weights + chunks;
        long* rows1 = rows + chunks;
        int* index1 = index + chunks;
        int t = start;
        for (; t + 2 <= end; t += 2)
        {
            long at = (long)t * width, at1 = at + width;
            RmsNorm(x + at, attentionGain, width, attentionEpsilon, normed);
            RmsNorm(x + at1, attentionGain, width, attentionEpsilon, normed1);
            Hash(normed, value, rows, index, weights);                          // one hash for Q, K, V
            Hash(normed1, value, rows1, index1, weights1);
            Bags(index, weights, q + at, k + at, v + at);
            Bags(index1, weights1, q + at1, k + at1, v + at1);
            long rotary = (long)positions[t] * rotaryDims, rotary1 = (long)positions[t + 1] * rotaryDims;
            Rotary(q + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
            Rotary(q + at1, heads, headWidth, rotaryDims, cos + rotary1, sin + rotary1);
            Rotary(k + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
            Rotary(k + at1, heads, headWidth, rotaryDims, cos + rotary1, sin + rotary1);
        }
        if (t < end)
            AttentionInputs(x, positions, t, end, q, k, v);
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
            RmsNorm(row, ffnGain, width, ffnEpsilon, normed);
            Hash(normed, expand, rows, index, weights);
            Bag(expand, hidden, index, weights, inner);                        // [K·(τ+2)]
            LayerNorm(inner, normWeight, normBias, hidden, (float)MemoryBlock.NormEpsilon, innerNormed);
            Hash(innerNormed, project, rows, index, weights);                  // K chunks of τ+2 bits
            Bag(project, width, index, weights, output);
            RowKernels.Add(output, row, width);                                // out = z + FFN(Norm(z))
        }
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
