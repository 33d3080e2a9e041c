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

    private (Tensor? Mask, int[]? Lengths)? rightPadded;                         // keyed by the mask: a `with` copy may change it

    /// <summary>Each row's count of real keys when <see cref="KeyMask"/> is a CPU [B, S] prefix of trues in every row (right
    /// padding, at least one real key), else null; read from the mask once per context, not once per layer.</summary>
    public int[]? RightPaddedLengths
    {
        get
        {
            if (rightPadded is { } known && ReferenceEquals(known.Mask, KeyMask)) return known.Lengths;
            rightPadded = (KeyMask, null);
            if (KeyMask is not { } mask || mask.device_type != DeviceType.CPU || mask.dim() != 2) return null;
            using var flags = mask.to(ScalarType.Bool);
            var real = flags.data<bool>().ToArray();                              // [B·S]
            int rows = (int)mask.shape[0], keys = (int)mask.shape[1];
            var lengths = new int[rows];
            for (int b = 0; b < rows; b++)
            {
                int n = 0;
                while (n < keys && real[(b * keys) + n]) n++;
                for (int j = n; j < keys; j++)
                    if (real[(b * keys) + j]) return null;                        // not right-padded
                if (n == 0) return null;
                lengths[b] = n;
            }
            rightPadded = (mask, lengths);
            return lengths;
        }
    }

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
