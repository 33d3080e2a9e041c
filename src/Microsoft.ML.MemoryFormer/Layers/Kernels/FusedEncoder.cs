using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The inference forward of a bidirectional MemoryFormer encoder over unpadded token windows, in managed code:
/// embedding rows → <see cref="FusedEncoderBlock"/> per layer → final RMSNorm → pooling (<see cref="PoolingKind"/>),
/// giving one pooled vector per window. The windows are packed back to back, so nothing is padded or masked, and each
/// window attends only to itself: the result equals <see cref="TransformerBackbone"/>'s forward (attention without the
/// causal mask, padded keys masked out) followed by <see cref="SequencePooling.Pool"/> up to float rounding.
/// </summary>
/// <remarks>Holds raw pointers into the backbone's parameters: build it per call (cheap).</remarks>
internal sealed unsafe partial class FusedEncoder
{
    private readonly TransformerBackbone backbone;     // keeps the parameters alive
    private readonly FusedEncoderBlock[] blocks;
    private readonly float* embedding, finalGain;
    private readonly float finalEpsilon;
    private readonly int width;
    private readonly long vocabulary;
    private readonly bool staged;
    private readonly FusedEncoderMemory memory;
    private readonly bool windowMajor;
    private readonly int pieceTokens;
    private readonly bool pieceBuffers;

    /// <summary>Most tokens a call should pass to <see cref="Pooled(IReadOnlyList{int[]}, PoolingKind, float*, ScoringProfile?)"/> at
    /// once: unbounded in practice (<see cref="MaxGroupTokens"/>) where pieces run in their workers' buffers, whose size does not
    /// depend on the group; else <paramref name="wholeGroupTokens"/>, which sizes the activations of the whole group
    /// (5 · tokens · d floats). One group a call means one fork/join and one head call instead of one per group, and a
    /// single tail where one worker waits for the other.</summary>
    public int GroupTokens(int wholeGroupTokens) => windowMajor && pieceBuffers && !staged ? MaxGroupTokens : wholeGroupTokens;

    /// <summary>The largest group <see cref="GroupTokens"/> gives: bounds the per-token index arrays of one call (≈ 12 bytes a token).</summary>
    public const int MaxGroupTokens = 1 << 20;

    /// <summary>With shared first-block projections, the largest share of a group's tokens whose id is new (not met
    /// earlier in this encoder's calls) for which the group still takes the shared rows; above it the group computes per
    /// token, as copying each token's row then saves little (a group of mostly distinct ids).</summary>
    public const double MaxNewIdShare = 0.75;

    /// <summary>Reads the backbone's parameters; <see cref="Supports"/> must be true.</summary>
    /// <param name="backbone">The encoder.</param>
    /// <param name="tableMajor">Gather the Memory Layers' rows table-major, slice by slice over every token of a group
    /// (<see cref="ColumnSliceGather"/>), where the widths allow; the same results bit for bit. Off by default: measured
    /// slower than token by token on the benchmark's tables, which L3 holds (docs/benchmarks.md, "Scoring, second round").</param>
    /// <param name="staged">Run each block's per-token work in stages over all tokens (hashes, then gathers, then rotary)
    /// instead of token by token; implied by <paramref name="tableMajor"/> (the profile then times each stage).</param>
    /// <param name="simd">The SIMD per-token kernels (<see cref="EncoderKernels"/>); false: the scalar ones of the decode step
    /// (before 2026-12-05 04:30; kept for the interleaved benchmark).</param>
    /// <param name="bf16">The bf16 copy of a Memory Layer table to gather from, or null for the fp32 table; null: every
    /// table in fp32 (<c>TextClassifierModel.UseInferencePrecision</c>).</param>
    /// <param name="shareFirstProjections">Compute the first block's Q, K and V before rotary once per distinct token id of
    /// the encoder's calls (<see cref="FusedEncoderBlock.Project"/>) instead of once per token: they depend on the id alone,
    /// so the results are the same bits. A group where more than <see cref="MaxNewIdShare"/> of the tokens bring an id not
    /// met before computes per token instead (<see cref="TextClassifierModel.ShareFirstProjections"/>).</param>
    /// <param name="windowMajor">Run every block over a few windows at a time, pieces in parallel (<see cref="WindowMajor"/>)
    /// rather than each block's three passes over the whole group in turn; the same bits. The model decides
    /// (<see cref="TextClassifierModel.UseWindowMajorPasses"/>: on with more than one worker). Staged passes always take the
    /// whole-group passes.</param>
    /// <param name="pieceTokens">Fewest tokens of a window-major piece (whole windows), or null for <see cref="PieceTokens"/>.</param>
    /// <param name="memory">Working memory kept across calls (<see cref="FusedEncoderMemory.Pool"/>), or null for fresh arrays.</param>
    /// <param name="pieceBuffers">With <paramref name="windowMajor"/>, run each piece in its worker's own activation buffer, the workers
    /// taking pieces one at a time (<see cref="InPieceBuffers"/>), so the activations no longer grow with the group and a call
    /// can be one group (<see cref="GroupTokens"/>); false: every piece in its place in one buffer of the whole group, in fixed
    /// ranges of windows per worker (as before 2026-12-07 s22). The same bits.</param>
    /// <param name="keepFirstRows">Reuse the first block's per-id rows <paramref name="memory"/> holds from an earlier encoder when
    /// they were computed from the same weights (<see cref="FusedEncoderMemory.FirstRowsKey"/>); false: rebuild them (as before 2026-12-07).</param>
    public FusedEncoder(TransformerBackbone backbone, bool tableMajor = false, bool staged = false, bool simd = true,
        Func<Tensor, Bf16Matrix?>? bf16 = null, bool shareFirstProjections = false, FusedEncoderMemory? memory = null, bool windowMajor = false,
        int? pieceTokens = null, bool keepFirstRows = true, bool pieceBuffers = true)
    {
        this.windowMajor = windowMajor;
        this.pieceBuffers = pieceBuffers;
        this.pieceTokens = pieceTokens ?? PieceTokens;
        this.backbone = backbone;
        this.memory = memory ?? new FusedEncoderMemory();
        width = backbone.Config.Width;
        blocks = backbone.Blocks.Select(b => new FusedEncoderBlock(b, backbone.Config, bf16)).ToArray();
        using var embeddingWeight = backbone.Embedding.weight!;                 // a new wrapper each read (TorchSharp); the module keeps the storage
        embedding = TensorMemory.Floats(embeddingWeight);
        vocabulary = embeddingWeight.shape[0];
        var norm = (RmsNorm)backbone.FinalNorm;
        finalGain = TensorMemory.Floats(norm.Weight);
        finalEpsilon = (float)norm.Epsilon;
        this.staged = (staged || tableMajor) && blocks.All(b => b.TableMajor);
        foreach (var block in blocks)
            (block.TableMajorGathers, block.Simd) = (tableMajor, simd);
        projections = shareFirstProjections && !this.staged && blocks.Length > 0
            ? new FirstProjections(blocks[0], width, vocabulary, this.memory, keepFirstRows ? () => FirstRowsKey(backbone, blocks[0]) : () => null)
            : null;
    }

    private readonly FirstProjections? projections;

    /// <summary>What the first block's per-id rows are computed from (<see cref="FusedEncoderBlock.ProjectionKey"/>, the embedding
    /// table's address, size and version, raw table writes that bump no version), or null where versions cannot be read.</summary>
    private static long[]? FirstRowsKey(TransformerBackbone backbone, FusedEncoderBlock first)
    {
        using var embedding = backbone.Embedding.weight!;
        return first.ProjectionKey([(long)TensorMemory.Address(embedding), embedding.numel(), TableVersion.Of(embedding), TileMajorBuffer.RawWrites])?.ToArray();
    }

    /// <summary>
    /// True when the fused forward computes this backbone exactly: fused kernels on, a MemoryFormer with RMSNorms in eval
    /// mode, every parameter and block buffer contiguous CPU fp32, and no bucket-usage counter attached (the fused forward
    /// records no hits).
    /// </summary>
    /// <remarks>Scorers ask before every call, and enumerating a backbone's parameters, buffers and modules through TorchSharp
    /// took ≈ 70 µs, the largest part of a one-row tabular prediction (≈ 100 µs). So everything but the mode, the switch and the
    /// usage counters is worked out once per backbone, and again when its embedding weight lives at another address (the
    /// parameters were replaced, as by a move to another device or dtype; this library never replaces only some of them).</remarks>
    public static bool Supports(TransformerBackbone backbone)
    {
        if (!KernelSettings.Current.UseFusedKernels || backbone.training)
            return false;
        nint embedding;
        using (var weight = backbone.Embedding.weight!)                        // TorchSharp hands out a new wrapper each time
        {
            if (!TensorMemory.IsCpuFloat32(weight))
                return false;
            embedding = (nint)TensorMemory.Address(weight);
        }
        if (!Shapes.TryGetValue(backbone, out var shape) || shape.Embedding != embedding)
            Shapes.AddOrUpdate(backbone, shape = Examine(backbone, embedding));
        return shape.Fits && shape.Layers.All(l => l.UsageCounter is null);
    }

    /// <summary>What <see cref="Supports"/> works out once per backbone: whether its architecture and storage fit (every
    /// parameter and block buffer contiguous CPU fp32), the embedding weight's address then, and its Memory Layers.</summary>
    private sealed record Shape(bool Fits, nint Embedding, MemoryLayer[] Layers);

    private static readonly ConditionalWeakTable<TransformerBackbone, Shape> Shapes = new();

    private static Shape Examine(TransformerBackbone backbone, nint embedding)
    {
        bool fits = FusedEncoderBlock.SupportsConfig(backbone.Config) && backbone.FinalNorm is RmsNorm
            && backbone.parameters().All(p => TensorMemory.IsCpuFloat32(p) && p.is_contiguous())
            && backbone.Blocks.All(b => b.buffers().All(t => TensorMemory.IsCpuFloat32(t) && t.is_contiguous()));
        return new Shape(fits, embedding, backbone.modules().OfType<MemoryLayer>().ToArray());
    }

    /// <summary>Windows of token ids (each 1 … context length long) → pooled vectors [W, d] after the final norm, as a
    /// tensor libtorch allocated (its GEMMs may take another summation order for a differently aligned managed array).</summary>
    /// <exception cref="ArgumentException">A window is empty or too long, or a token id is outside the vocabulary.</exception>
    public Tensor Pooled(IReadOnlyList<int[]> windows, PoolingKind pooling, ScoringProfile? profile = null)
    {
        var pooled = empty(windows.Count, width);                              // [W, d]
        Pooled(windows, pooling, TensorMemory.Floats(pooled), profile);
        return pooled;
    }

    /// <summary>As <see cref="Pooled(IReadOnlyList{int[]}, PoolingKind, ScoringProfile?)"/>, into <paramref name="output"/> [W·d];
    /// <paramref name="profile"/>, when set, gets the time of each part.</summary>
    public void Pooled(IReadOnlyList<int[]> windows, PoolingKind pooling, float* output, ScoringProfile? profile = null)
    {
        long clock = Stopwatch.GetTimestamp();
        var starts = new int[windows.Count + 1];
        for (int w = 0; w < windows.Count; w++)
        {
            int length = windows[w].Length;
            if (length < 1 || length > backbone.Config.ContextLength)
                throw new ArgumentException($"Window {w} has {length} tokens; the encoder takes 1 to {backbone.Config.ContextLength} (ContextLength).", nameof(windows));
            starts[w + 1] = starts[w] + length;
        }
        int n = starts[^1];
        for (int w = 0; w < windows.Count; w++)
            foreach (int id in windows[w])
                if ((uint)id >= vocabulary)
                    throw new ArgumentException($"Token id {id} of window {w} is outside the vocabulary of {vocabulary} ids.", nameof(windows));
        if (windowMajor && !staged)
        {
            WindowMajor(windows, starts, pooling, output, profile, clock);                 // embeds each piece itself
            return;
        }
        long scratchSize = staged ? blocks.Max(b => b.ScratchFloats(n)) : 0;
        var buffer = Activations((5L * n * width) + scratchSize);
        float* x = (float*)Unsafe.AsPointer(ref buffer[0]);
        float* q = x + ((long)n * width), k = q + ((long)n * width), v = k + ((long)n * width), attended = v + ((long)n * width);
        float* scratch = staged ? attended + ((long)n * width) : null;
        Embed(windows, starts, 0, windows.Count, x);
        if (profile is not null) profile.FusedEmbeddingMs += FusedEncoderBlock.Lap(ref clock);
        for (int b = 0; b < blocks.Length; b++)
        {
            long clock0 = Stopwatch.GetTimestamp();
            if (b == 0 && projections?.Slots(windows, embedding, n, profile) is { } slots)
            {
                if (profile is not null) profile.FusedAttentionInputsMs += FusedEncoderBlock.Lap(ref clock0);
                blocks[0].Forward(x, starts, q, k, v, attended, null, profile, projections.Rows, slots);
            }
            else
            {
                if (b == 0 && profile is not null) profile.FusedFirstBlockRows += n;
                blocks[b].Forward(x, starts, q, k, v, attended, scratch, profile);
            }
        }
        clock = Stopwatch.GetTimestamp();
        for (int w = 0; w < windows.Count; w++)
            Pool(x, starts[w], starts[w + 1], pooling, q, output + ((long)w * width));
        if (profile is not null) profile.FusedPoolingMs += FusedEncoderBlock.Lap(ref clock);
        GC.KeepAlive(buffer);                                                    // x, q, k, v point into it
        GC.KeepAlive(projections);
        GC.KeepAlive(backbone);
    }

    /// <summary>
    /// Rows of token vectors already embedded (the tabular tokenizer's output [B, T, d], contiguous) → pooled vectors [B, d]
    /// after the final norm into <paramref name="output"/>: the blocks of <see cref="Pooled(IReadOnlyList{int[]}, PoolingKind, float*, ScoringProfile?)"/>
    /// with each row one window of <paramref name="length"/> tokens, read from <paramref name="tokens"/> instead of the embedding table.
    /// </summary>
    /// <exception cref="InvalidOperationException">The encoder shares the first block's per-id rows, which vectors do not have.</exception>
    public void PooledVectors(float* tokens, int rows, int length, PoolingKind pooling, float* output)
    {
        if (projections is not null)
            throw new InvalidOperationException("An encoder that shares the first block's per-id rows cannot take token vectors.");
        var window = new int[length];                                            // id 0: every row's length; the vectors come from tokens
        vectors = tokens;
        try { Pooled(Enumerable.Repeat(window, rows).ToArray(), pooling, output); }
        finally { vectors = null; }
    }

    /// <summary>During <see cref="PooledVectors"/>, the token vectors <see cref="Embed"/> copies instead of embedding rows.</summary>
    private float* vectors;

    /// <summary>The kept activation buffer (pinned), grown to at least <paramref name="floats"/>.</summary>
    private float[] Activations(long floats)
    {
        if (memory.Activations.LongLength < floats)
            memory.Activations = GC.AllocateUninitializedArray<float>(checked((int)floats), pinned: true);
        return memory.Activations;
    }

    /// <summary>Embedding rows of windows [first, last) into x (ids already checked), or their token vectors (<see cref="PooledVectors"/>).</summary>
    private void Embed(IReadOnlyList<int[]> windows, int[] starts, int first, int last, float* x)
    {
        for (int w = first; w < last; w++)
        {
            var ids = windows[w];
            for (int t = 0; t < ids.Length; t++)
            {
                long token = starts[w] + t;
                EncoderKernels.Copy(vectors != null ? vectors + (token * width) : embedding + ((long)ids[t] * width), x + (token * width), width);
            }
        }
    }

    /// <summary>Fewest tokens a piece of <see cref="WindowMajor"/> runs through every block at once (whole windows): 128 (≈ 320 KB
    /// of activations at d = 128) on a core with a 1 MB L2, as measured on the Zen 4; 512 (≈ 1.3 MB) where the L2 is larger, as on
    /// the Intel machine's 2 MB, where 512-token pieces ran the encoder 2.4–4.3 % faster than 128 (docs/benchmarks.md, "Scoring,
    /// seventh round"). Any size gives the same bits (windows never see each other).</summary>
    public static int PieceTokens { get; } = PieceTokensFor(Runtime.CacheSizes.L2Bytes);

    /// <summary><see cref="PieceTokens"/> for a core's L2 of <paramref name="l2Bytes"/>.</summary>
    internal static int PieceTokensFor(long l2Bytes) => l2Bytes > (1L << 20) ? 512 : 128;

    /// <summary>
    /// Every block over a few windows at a time (<see cref="FusedEncoderBlock.ForwardWindows"/>, pieces of about
    /// <see cref="PieceTokens"/> tokens whose activations stay in L2 from block to block), pieces in parallel:
    /// one fork/join per group instead of three per block, the same bits. The first block's shared rows, when any, are
    /// made before (<see cref="FirstProjections"/>). The profile gets each part's thread time ÷ workers.
    /// </summary>
    private void WindowMajor(IReadOnlyList<int[]> windows, int[] starts, PoolingKind pooling, float* output, ScoringProfile? profile, long clock)
    {
        int n = starts[^1], count = windows.Count, longest = 0;
        for (int w = 0; w < count; w++)
            longest = Math.Max(longest, starts[w + 1] - starts[w]);
        foreach (var block in blocks)
            if (longest > block.RotaryPositions)
                throw new ArgumentException($"A window of {longest} tokens is longer than the {block.RotaryPositions} rotary positions.", nameof(windows));
        var positions = new int[n];
        for (int w = 0; w < count; w++)
            for (int t = starts[w]; t < starts[w + 1]; t++)
                positions[t] = t - starts[w];
        int[]? slots = blocks.Length > 0 ? projections?.Slots(windows, embedding, n, profile) : null;
        if (profile is not null)
        {
            if (slots is null && blocks.Length > 0) profile.FusedFirstBlockRows += n;
            profile.FusedAttentionInputsMs += FusedEncoderBlock.Lap(ref clock);
        }
        float* projected = slots is null ? null : projections!.Rows;
        var ticks = profile is null ? null : new long[5];
        int scratchFloats = WindowAttention.ScratchFloats(blocks.Length > 0 ? blocks[0].HeadWidth : 8, longest);
        if (pieceBuffers)
            InPieceBuffers(windows, starts, positions, slots, projected, pooling, output, ticks, scratchFloats);
        else
            InRanges(windows, starts, positions, slots, projected, pooling, output, ticks, scratchFloats);
        if (profile is not null && ticks is not null)
        {
            double ms = 1000.0 / Stopwatch.Frequency / Math.Min(KernelParallel.Workers, count);
            profile.FusedAttentionInputsMs += ticks[0] * ms;
            profile.FusedAttentionMs += ticks[1] * ms;
            profile.FusedFeedforwardMs += ticks[2] * ms;
            profile.FusedEmbeddingMs += ticks[3] * ms;
            profile.FusedPoolingMs += ticks[4] * ms;
        }
        GC.KeepAlive(projections);
        GC.KeepAlive(backbone);
    }

    /// <summary>
    /// <see cref="WindowMajor"/>'s pieces, each in its worker's own buffer: the group is cut into pieces of whole windows of at
    /// least <see cref="PieceTokens"/> tokens (fewer where the group has less than four such pieces a worker: a PredictionEngine
    /// call of one long row still runs its windows on every worker), and each worker takes the next piece not yet taken until none is left, running it in
    /// a buffer of 5 · (longest piece) · d floats that is the same for every piece it takes (its lines stay in the core's L2
    /// and TLB). The buffer's pointers are shifted by the piece's first token, so the blocks index tokens as in one buffer of
    /// the whole group. Pieces taken one at a time leave at most one piece of waiting at the end, where fixed ranges of windows
    /// left up to a range; and as the buffers do not grow with the group, a call scores as one group (<see cref="GroupTokens"/>).
    /// </summary>
    private void InPieceBuffers(IReadOnlyList<int[]> windows, int[] starts, int[] positions, int[]? slots, float* projected,
        PoolingKind pooling, float* output, long[]? ticks, int scratchFloats)
    {
        int count = windows.Count;
        var pieces = new List<int> { 0 };                                        // each piece's first window, then count
        int longestPiece = 0, target = Math.Clamp(starts[count] / (4 * KernelParallel.Workers), 1, pieceTokens); // ≥ 4 pieces a worker when the call is small
        for (int w0 = 0; w0 < count;)
        {
            int w1 = PieceEnd(starts, w0, count, target);
            longestPiece = Math.Max(longestPiece, starts[w1] - starts[w0]);
            pieces.Add(w0 = w1);
        }
        int pieceCount = pieces.Count - 1, workers = Math.Min(KernelParallel.Workers, pieceCount);
        long pieceFloats = (long)longestPiece * width, workerFloats = Align((5 * pieceFloats) + scratchFloats);
        var buffer = Activations(workers * workerFloats);
        nint ba = (nint)Unsafe.AsPointer(ref buffer[0]), oa = (nint)output, pa = (nint)projected;
        int next = -1;
        KernelParallel.For(workers, (long)starts[count] / workers * width * 64, (first, last) =>
        {
            var local = ticks is null ? null : new long[5];
            for (int worker = first; worker < last; worker++)
            {
                float* own = (float*)ba + (worker * workerFloats), attention = own + (5 * pieceFloats);
                for (int p; (p = Interlocked.Increment(ref next)) < pieceCount;)
                {
                    int w0 = pieces[p], w1 = pieces[p + 1];
                    long shift = (long)starts[w0] * width;                       // token t of the group at own[(t − start) · d]
                    float* xs = own - shift, q = xs + pieceFloats, k = q + pieceFloats, v = k + pieceFloats, attended = v + pieceFloats;
                    RunPiece(windows, starts, positions, w0, w1, xs, q, k, v, attended, attention, local, (float*)pa, slots, pooling, (float*)oa);
                }
            }
            if (local is not null)
                lock (ticks!)
                    for (int i = 0; i < local.Length; i++) ticks[i] += local[i];
        });
        GC.KeepAlive(buffer);
    }

    /// <summary>The window after the piece that starts at window <paramref name="w0"/>: whole windows up to <paramref name="last"/>
    /// until the piece holds at least <paramref name="tokens"/> tokens.</summary>
    private static int PieceEnd(int[] starts, int w0, int last, int tokens)
    {
        int w1 = w0 + 1;
        while (w1 < last && starts[w1] - starts[w0] < tokens)
            w1++;
        return w1;
    }

    /// <summary>Rounds a float count up to whole 64-byte lines.</summary>
    private static long Align(long floats) => (floats + 15) & ~15L;

    /// <summary>Windows [w0, w1) through every block and the pooling (<see cref="WindowMajor"/>).</summary>
    private void RunPiece(IReadOnlyList<int[]> windows, int[] starts, int[] positions, int w0, int w1, float* xs, float* q, float* k, float* v,
        float* attended, float* attention, long[]? local, float* projected, int[]? slots, PoolingKind pooling, float* output)
    {
        long tick = Stopwatch.GetTimestamp();
        Embed(windows, starts, w0, w1, xs);
        if (local is not null) local[3] += Stopwatch.GetTimestamp() - tick;
        for (int b = 0; b < blocks.Length; b++)
            blocks[b].ForwardWindows(xs, starts, positions, w0, w1, q, k, v, attended, attention, local,
                b == 0 ? projected : null, b == 0 ? slots : null);
        tick = Stopwatch.GetTimestamp();
        for (int w = w0; w < w1; w++)
            Pool(xs, starts[w], starts[w + 1], pooling, q + ((long)starts[w] * width), output + ((long)w * width));
        if (local is not null) local[4] += Stopwatch.GetTimestamp() - tick;
    }

    /// <summary><see cref="WindowMajor"/> as before 2026-12-07 s22: fixed ranges of windows per worker, every piece in its place in
    /// one buffer of the whole group's activations.</summary>
    private void InRanges(IReadOnlyList<int[]> windows, int[] starts, int[] positions, int[]? slots, float* projected,
        PoolingKind pooling, float* output, long[]? ticks, int scratchFloats)
    {
        int count = windows.Count, n = starts[count];
        var buffer = Activations(5L * n * width);
        nint xa = (nint)Unsafe.AsPointer(ref buffer[0]), oa = (nint)output, pa = (nint)projected;
        long size = (long)n * width;
        KernelParallel.For(count, (long)(n / count + 1) * width * 64, (first, last) =>
        {
            var local = ticks is null ? null : new long[5];
            var scratch = GC.AllocateUninitializedArray<float>(scratchFloats);
            fixed (float* attention = scratch)
            {
                float* xs = (float*)xa, q = xs + size, k = q + size, v = k + size, attended = v + size;
                for (int w0 = first; w0 < last;)
                {
                    int w1 = PieceEnd(starts, w0, last, pieceTokens);
                    RunPiece(windows, starts, positions, w0, w1, xs, q, k, v, attended, attention, local, (float*)pa, slots, pooling, (float*)oa);
                    w0 = w1;
                }
            }
            if (local is not null)
                lock (ticks!)
                    for (int i = 0; i < local.Length; i++) ticks[i] += local[i];
        });
        GC.KeepAlive(buffer);
    }

    /// <summary>The final norm of the tokens pooling reads, then the pooled vector of window [start, end).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Pool(float* x, int start, int end, PoolingKind pooling, float* normed, float* output)
    {
        switch (pooling)
        {
            case PoolingKind.First:
                EncoderKernels.RmsNorm(x + ((long)start * width), finalGain, width, finalEpsilon, output);
                break;
            case PoolingKind.Last:
                EncoderKernels.RmsNorm(x + ((long)(end - 1) * width), finalGain, width, finalEpsilon, output);
                break;
            case PoolingKind.Mean:
                new Span<float>(output, width).Clear();
                for (int t = start; t < end; t++)
                {
                    EncoderKernels.RmsNorm(x + ((long)t * width), finalGain, width, finalEpsilon, normed);   // the same bits as VectorKernels'
                    RowKernels.Add(normed, output, width);
                }
                for (int c = 0; c < width; c++)
                    output[c] /= end - start;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(pooling), pooling, "Unknown pooling.");
        }
    }
}
