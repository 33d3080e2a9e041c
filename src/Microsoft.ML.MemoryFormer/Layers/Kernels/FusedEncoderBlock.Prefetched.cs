using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The paired per-token passes of <see cref="FusedEncoderBlock"/> as software pipelines that ask for the table rows of the next
/// pair of tokens before they gather the current pair's (<see cref="Runtime.KernelSettings.PrefetchNextRows"/>). A token's rows
/// are known only once its hash is done, so neither the out-of-order core nor the hardware prefetcher can reach them while the
/// token before is gathered; here the next pair's hash runs first and its rows (every 64-byte line) are prefetched, so their
/// L2/L3 misses overlap the current pair's gathers. Each token's arithmetic is the same operations in the same order as in
/// <see cref="FeedforwardPairs"/> and <see cref="AttentionInputPairs"/>, only the order between tokens changes: the same bits.
/// </summary>
internal sealed unsafe partial class FusedEncoderBlock
{
    /// <summary><see cref="AttentionInputPairs"/>, pipelined: the hash of pair p + 1 and the prefetch of its Q/K/V rows come
    /// before the gathers of pair p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void AttentionInputPairsPrefetched(float* x, int[] positions, int start, int end, float* q, float* k, float* v)
    {
        float* normed = stackalloc float[2 * width];
        float* weights = stackalloc float[4 * chunks];                            // [2 sets][2 tokens][K]
        long* rows = stackalloc long[chunks];
        int* index = stackalloc int[4 * chunks];
        int pairsEnd = start + ((end - start) / 2 * 2), set = 0;
        if (pairsEnd > start)
            HashQkvPair(x, start, normed, rows, index, weights);
        int t = start;
        for (; t < pairsEnd; t += 2)
        {
            int* current = index + (set * 2 * chunks);
            float* currentWeights = weights + (set * 2 * chunks);
            if (t + 2 < pairsEnd)
                HashQkvPair(x, t + 2, normed, rows, index + ((set ^ 1) * 2 * chunks), weights + ((set ^ 1) * 2 * chunks));
            long at = (long)t * width, at1 = at + width;
            Bags(current, currentWeights, q + at, k + at, v + at);
            Bags(current + chunks, currentWeights + chunks, q + at1, k + at1, v + at1);
            long rotary = (long)positions[t] * rotaryDims, rotary1 = (long)positions[t + 1] * rotaryDims;
            Rotary(q + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
            Rotary(q + at1, heads, headWidth, rotaryDims, cos + rotary1, sin + rotary1);
            Rotary(k + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
            Rotary(k + at1, heads, headWidth, rotaryDims, cos + rotary1, sin + rotary1);
            set ^= 1;
        }
        if (t < end)
            AttentionInputs(x, positions, t, end, q, k, v);
    }

    /// <summary>Norm and hash of tokens t and t + 1 into index/weights [2][K], then their Q, K and V rows prefetched.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void HashQkvPair(float* x, int t, float* normed, long* rows, int* index, float* weights)
    {
        long at = (long)t * width;
        RmsNorm(x + at, attentionGain, width, attentionEpsilon, normed);
        RmsNorm(x + at + width, attentionGain, width, attentionEpsilon, normed + width);
        Hash(normed, value, rows, index, weights);                              // one hash for Q, K, V
        Hash(normed + width, value, rows, index + chunks, weights + chunks);
        query.Prefetch(index, 2 * chunks, width);
        key.Prefetch(index, 2 * chunks, width);
        value.Prefetch(index, 2 * chunks, width);
    }

    /// <summary>
    /// <see cref="FeedforwardPairs"/> as a three-stage pipeline over pairs of tokens: (A) residual, RMSNorm, hash of ML₁ and its rows
    /// prefetched; (B) ML₁'s gather, LayerNorm, hash of ML₂ and its rows prefetched; (C) ML₂'s gather and the residual. Each step runs
    /// C of pair p, B of pair p + 1, A of pair p + 2, so every gather finds its rows asked for one stage earlier.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void FeedforwardPairsPrefetched(float* x, float* attended, int start, int end)
    {
        float* normed = stackalloc float[2 * width];
        float* output = stackalloc float[2 * width];
        float* inner = stackalloc float[2 * hidden];
        float* innerNormed = stackalloc float[2 * hidden];
        float* weightsA = stackalloc float[2 * chunks];
        float* weightsB = stackalloc float[2 * chunks];
        long* rows = stackalloc long[chunks];
        int* indexA = stackalloc int[2 * chunks];
        int* indexB = stackalloc int[2 * chunks];
        int pairsEnd = start + ((end - start) / 2 * 2);
        if (pairsEnd > start)
        {
            FeedforwardStageA(x, attended, start, normed, rows, indexA, weightsA);
            FeedforwardStageB(indexA, weightsA, inner, innerNormed, rows, indexB, weightsB);
        }
        if (start + 2 < pairsEnd)
            FeedforwardStageA(x, attended, start + 2, normed, rows, indexA, weightsA);
        int t = start;
        for (; t < pairsEnd; t += 2)
        {
            float* row = x + ((long)t * width), row1 = row + width;
            Bag(project, width, indexB, weightsB, output);                        // C of pair t
            Bag(project, width, indexB + chunks, weightsB + chunks, output + width);
            RowKernels.Add(output, row, width);                                    // out = z + FFN(Norm(z))
            RowKernels.Add(output + width, row1, width);
            if (t + 2 < pairsEnd)
                FeedforwardStageB(indexA, weightsA, inner, innerNormed, rows, indexB, weightsB);   // B of pair t + 2
            if (t + 4 < pairsEnd)
                FeedforwardStageA(x, attended, t + 4, normed, rows, indexA, weightsA);           // A of pair t + 4
        }
        if (t < end)
            Feedforward(x, attended, t, end);
    }

    /// <summary>Stage A of <see cref="FeedforwardPairsPrefetched"/> for tokens t, t + 1: z = x + attention, RMSNorm, ML₁'s hash into
    /// index/weights [2][K], its rows prefetched.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FeedforwardStageA(float* x, float* attended, int t, float* normed, long* rows, int* index, float* weights)
    {
        float* row = x + ((long)t * width), row1 = row + width;
        RowKernels.Add(attended + ((long)t * width), row, width);               // z = x + Attn(Norm(x))
        RowKernels.Add(attended + ((long)(t + 1) * width), row1, width);
        RmsNorm(row, ffnGain, width, ffnEpsilon, normed);
        RmsNorm(row1, ffnGain, width, ffnEpsilon, normed + width);
        Hash(normed, expand, rows, index, weights);
        Hash(normed + width, expand, rows, index + chunks, weights + chunks);
        expand.Prefetch(index, 2 * chunks, hidden);
    }

    /// <summary>Stage B of <see cref="FeedforwardPairsPrefetched"/>: ML₁'s gathers of the pair hashed in stage A, LayerNorm, ML₂'s hash
    /// into index/weights [2][K], its rows prefetched.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FeedforwardStageB(int* indexA, float* weightsA, float* inner, float* innerNormed, long* rows, int* index, float* weights)
    {
        float epsilon = (float)MemoryBlock.NormEpsilon;
        Bag(expand, hidden, indexA, weightsA, inner);                            // [K·(τ+2)]
        Bag(expand, hidden, indexA + chunks, weightsA + chunks, inner + hidden);
        if (Simd && Runtime.KernelSettings.Current.PairedLayerNorm)
            EncoderKernels.LayerNormPair(inner, inner + hidden, normWeight, normBias, hidden, epsilon, innerNormed, innerNormed + hidden);   // the same bits
        else
        {
            LayerNorm(inner, normWeight, normBias, hidden, epsilon, innerNormed);
            LayerNorm(inner + hidden, normWeight, normBias, hidden, epsilon, innerNormed + hidden);
        }
        Hash(innerNormed, project, rows, index, weights);                        // K chunks of τ+2 bits
        Hash(innerNormed + hidden, project, rows, index + chunks, weights + chunks);
        project.Prefetch(index, 2 * chunks, width);
    }

    /// <summary>Every 64-byte line of the rows <paramref name="index"/>[0, count) of a table of <paramref name="rowBytes"/>-byte rows,
    /// into L1 (<c>prefetcht0</c>) or, with <see cref="PrefetchIntoL2"/>, L2: a hint only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRows(byte* table, int rowBytes, int* index, int count)
    {
        bool l2 = PrefetchIntoL2;
        int step = PrefetchStep;
        if (step <= 0)
            return;
        for (int j = 0; j < count; j++)
        {
            byte* p = table + ((long)index[j] * rowBytes);
            if (l2)
                for (int l = 0; l < rowBytes; l += step)
                    Sse.Prefetch1(p + l);
            else
                for (int l = 0; l < rowBytes; l += step)
                    Sse.Prefetch0(p + l);
        }
    }

    /// <summary>Probe knob: prefetch into L2 (<c>prefetcht1</c>) instead of L1.</summary>
    internal static bool PrefetchIntoL2 { get; set; }

    /// <summary>Probe knob: bytes between prefetched addresses of a row (64: every line; 128: every other line, the L2's adjacent-line
    /// prefetcher fetching the pair).</summary>
    internal static int PrefetchStep { get; set; } = 64;

    private sealed partial class Layer
    {
        /// <summary>Prefetches rows <paramref name="index"/>[0, count) of this layer's table (h columns) as its gathers read them.</summary>
        public void Prefetch(int* index, int count, int h)
        {
            if (!Sse.IsSupported)
                return;
            ushort* table16 = Table16;
            if (table16 is not null) PrefetchRows((byte*)table16, 2 * h, index, count);
            else PrefetchRows((byte*)Table, 4 * h, index, count);
        }
    }
}
