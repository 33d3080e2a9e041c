namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>One transformer block of the fused batch-1 decode step: <see cref="FusedDecodeBlock"/> (MemoryFormer) or
/// <see cref="FusedDenseDecodeBlock"/> (the dense baseline, so both are decoded by equally optimised code).</summary>
internal unsafe interface IFusedDecodeBlock
{
    /// <summary>Positions the rotary tables cover; a cache position at or past it cannot be decoded.</summary>
    long RotaryPositions { get; }

    /// <summary>Runs the block on x [d] in place for the token at position <c>cache.Length</c>, appending its K and V.</summary>
    void Step(float* x, AttentionCache cache, FusedDecodeBlock.Scratch s);
}
