using System.Runtime.CompilerServices;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>The per-token passes of <see cref="FusedEncoderBlock"/>: Q, K, V of a token (one at a time, two side by side, or
/// copied from the first block's rows per token id that <see cref="FusedEncoderBlock.Project"/> makes) and a token's residual
/// Memory Block (one or two at a time), each over a range of tokens on the calling thread.</summary>
internal sealed unsafe partial class FusedEncoderBlock
{
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
}
