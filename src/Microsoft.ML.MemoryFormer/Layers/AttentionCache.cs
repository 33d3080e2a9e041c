using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// One layer's key/value cache, preallocated to the context length so decoding writes in place instead of
/// concatenating per token. Keys are stored after rotary.
/// </summary>
internal sealed class AttentionCache : IDisposable
{
    private readonly Tensor keys;     // [B, H, C, hd]
    private readonly Tensor values;   // [B, H, C, hd]

    public AttentionCache(long batch, long heads, long capacity, long headWidth, ScalarType dtype, Device device)
    {
        keys = zeros([batch, heads, capacity, headWidth], dtype, device).DetachFromDisposeScope();     // owned and disposed by the cache
        values = zeros([batch, heads, capacity, headWidth], dtype, device).DetachFromDisposeScope();
    }

    /// <summary>Number of positions stored.</summary>
    public long Length { get; private set; }

    /// <summary>Maximum positions the cache holds.</summary>
    public long Capacity => keys.shape[2];

    /// <summary>Writes k, v [B, H, T, hd] after the stored positions; returns views of all keys/values [B, H, L+T, hd].</summary>
    public (Tensor Keys, Tensor Values) Append(Tensor k, Tensor v)
    {
        long t = k.shape[2];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"The KV cache holds {Capacity} positions; {Length + t} were requested.");
        keys.narrow(2, Length, t).copy_(k);
        values.narrow(2, Length, t).copy_(v);
        Length += t;
        return (keys.narrow(2, 0, Length), values.narrow(2, 0, Length));
    }

    /// <summary>The key and value buffers [B, H, C, hd], for writers that fill position <see cref="Length"/> themselves.</summary>
    internal (Tensor Keys, Tensor Values) Buffers => (keys, values);

    /// <summary>True for a one-sequence fp32 cache on the CPU, the case the fused decode step writes directly.</summary>
    internal bool IsBatchOneCpuFloat32 => keys.shape[0] == 1 && Layers.Kernels.TensorMemory.IsCpuFloat32(keys) && keys.is_contiguous();

    /// <summary>Counts one more position written in place into <see cref="Buffers"/>.</summary>
    internal void Advance()
    {
        if (Length >= Capacity)
            throw new InvalidOperationException($"The KV cache holds {Capacity} positions; {Length + 1} were requested.");
        Length++;
    }

    /// <summary>Forgets the stored positions (the buffers are reused).</summary>
    public void Reset() => Length = 0;

    /// <summary>Keeps only the batch rows in <paramref name="index"/> (int64 [B']), e.g. after some sequences finish.</summary>
    public AttentionCache Select(Tensor index)
    {
        var copy = new AttentionCache(index.shape[0], keys.shape[1], Capacity, keys.shape[3], keys.dtype, keys.device);
        copy.keys.copy_(keys.index_select(0, index));
        copy.values.copy_(values.index_select(0, index));
        copy.Length = Length;
        return copy;
    }

    public void Dispose()
    {
        keys.Dispose();
        values.Dispose();
    }
}
