using System.Runtime.CompilerServices;
using Microsoft.ML.MemoryFormer.Configuration;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The attention half of a fused batch-1 decode step, the same for the MemoryFormer block (<see cref="FusedDecodeBlock"/>)
/// and the dense one (<see cref="FusedDenseDecodeBlock"/>), which differ only in how they make Q, K and V and in their
/// FFN: the pre-attention RMSNorm, rotary on the new query and key, the key and value appended to the
/// <see cref="AttentionCache"/>, and the query's causal attention over every cached position.
/// </summary>
/// <remarks>Holds raw pointers into the block's parameters: build it per generation.</remarks>
internal sealed unsafe class DecodeAttention
{
    private readonly SelfAttention attention;          // keeps the rotary tables alive
    private readonly int heads, headWidth, rotaryDims;
    private readonly float* cos, sin;

    /// <summary>Reads the block's attention norm and rotary tables.</summary>
    public DecodeAttention(TransformerBlock block, MemoryFormerConfig config)
    {
        attention = block.Attention;
        Norm = new DecodeRmsNorm((RmsNorm)block.AttentionNorm, config.Width);
        (heads, headWidth) = (config.Heads, config.HeadWidth);
        rotaryDims = attention.Rotary.RotaryDims;
        cos = TensorMemory.Floats(attention.Rotary.Tables.Cos);
        sin = TensorMemory.Floats(attention.Rotary.Tables.Sin);
    }

    /// <summary>The RMSNorm before attention.</summary>
    public DecodeRmsNorm Norm { get; }

    /// <summary>Positions the rotary tables cover; a cache position at or past it cannot be decoded.</summary>
    public long RotaryPositions => attention.Rotary.Tables.Cos.shape[0];

    /// <summary>Throws unless the token at position <c>cache.Length</c> fits both the cache and the rotary tables.</summary>
    public void CheckRoom(AttentionCache cache)
    {
        if (cache.Length >= cache.Capacity || cache.Length >= RotaryPositions)
            throw new InvalidOperationException($"The KV cache holds {cache.Capacity} positions and the rotary tables {RotaryPositions}; " +
                $"position {cache.Length} cannot be decoded.");
    }

    /// <summary>
    /// For the token at position <c>cache.Length</c>: rotates <paramref name="q"/> and <paramref name="k"/> [d] in place,
    /// appends k and <paramref name="v"/> to the cache and writes the attention output [d] to <paramref name="attended"/>
    /// (<paramref name="scores"/> [context] is working memory). Checks the room first, so nothing is written past the cache.
    /// </summary>
    public void Attend(float* q, float* k, float* v, AttentionCache cache, float* scores, float* attended)
    {
        CheckRoom(cache);
        int position = (int)cache.Length, capacity = (int)cache.Capacity;
        var (keyBuffer, valueBuffer) = cache.Buffers;
        float* keys = TensorMemory.Floats(keyBuffer), values = TensorMemory.Floats(valueBuffer);   // [1, H, C, hd]
        float* positionCos = cos + ((long)position * rotaryDims), positionSin = sin + ((long)position * rotaryDims);
        VectorKernels.Rotary(q, heads, headWidth, rotaryDims, positionCos, positionSin);
        VectorKernels.Rotary(k, heads, headWidth, rotaryDims, positionCos, positionSin);
        for (int h = 0; h < heads; h++)
        {
            long at = (((long)h * capacity) + position) * headWidth;
            Unsafe.CopyBlock(keys + at, k + (h * headWidth), (uint)(headWidth * sizeof(float)));
            Unsafe.CopyBlock(values + at, v + (h * headWidth), (uint)(headWidth * sizeof(float)));
        }
        cache.Advance();
        VectorKernels.Attend(q, keys, values, heads, capacity, headWidth, position + 1, scores, attended);
    }
}
