using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// How a forward pass attends: causal (language model) or bidirectional (encoders), which key positions are
/// real tokens, and the per-layer KV caches when decoding.
/// </summary>
/// <param name="Causal">Whether position i may only see positions ≤ i.</param>
/// <param name="KeyMask">bool [B, S], true for real tokens over all S = cached + new positions; null when none are padded.</param>
/// <param name="Caches">One cache per layer when decoding incrementally; null otherwise.</param>
internal sealed record AttentionContext(bool Causal, Tensor? KeyMask = null, IReadOnlyList<AttentionCache>? Caches = null)
{
    /// <summary>Positions already in the caches (0 without caches).</summary>
    public long PastLength => Caches is { Count: > 0 } c ? c[0].Length : 0;

    /// <summary>Causal attention over unpadded sequences, no cache: the training case of a language model.</summary>
    public static AttentionContext CausalLm { get; } = new(true);

    /// <summary>
    /// The boolean mask [B or 1, 1, T, S] for T new queries after <paramref name="past"/> cached positions, or
    /// null when the plain causal flag or no mask is exact. A query always sees itself, so no row is empty.
    /// </summary>
    public Tensor? BuildMask(long queries, long past, Device device)
    {
        long keys = past + queries;
        if (KeyMask is null && (!Causal || queries == 1 || past == 0)) return null;
        using Scalar first = past, end = keys;                                     // named, not implicit: see Runtime/TorchScope.cs
        var qPos = arange(first, end, LiveScalars.OneInteger, ScalarType.Int64, device).unsqueeze(1);                 // [T, 1]
        var kPos = arange(LiveScalars.ZeroInteger, end, LiveScalars.OneInteger, ScalarType.Int64, device).unsqueeze(0); // [1, S]
        var allowed = Causal ? kPos.le(qPos) : ones([queries, keys], ScalarType.Bool, device); // [T, S]
        allowed = allowed.unsqueeze(0).unsqueeze(0);                               // [1, 1, T, S]
        if (KeyMask is not null)
            allowed = allowed.logical_and(KeyMask.narrow(1, 0, keys).unsqueeze(1).unsqueeze(1)); // [B, 1, T, S]
        return allowed.logical_or(kPos.eq(qPos).unsqueeze(0).unsqueeze(0));        // a query always sees itself
    }
}
