using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>Hidden states [B, T, d] of padded rows → one vector per row [B, d] (<see cref="PoolingKind"/>).</summary>
/// <remarks>Constants are <see cref="LiveScalars"/>: this runs on every prediction.</remarks>
internal static class SequencePooling
{
    /// <param name="hidden">Hidden states [B, T, d].</param>
    /// <param name="mask">bool [B, T], true for real tokens; null when no row is padded.</param>
    /// <param name="kind">Which positions to read.</param>
    public static Tensor Pool(Tensor hidden, Tensor? mask, PoolingKind kind) => kind switch
    {
        PoolingKind.First => hidden.select(1, 0),                                  // [B, d]
        PoolingKind.Last => Last(hidden, mask),                                    // [B, d]
        PoolingKind.Mean => Mean(hidden, mask),                                    // [B, d]
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown pooling."),
    };

    private static Tensor Mean(Tensor hidden, Tensor? mask)
    {
        if (mask is null) return hidden.mean([1]);                                 // [B, d]
        var weights = mask.unsqueeze(-1).to_type(hidden.dtype);                    // [B, T, 1]
        var counts = weights.sum(1).clamp_min(LiveScalars.One);                    // [B, 1]
        return (hidden * weights).sum(1) / counts;                                 // [B, d]
    }

    private static Tensor Last(Tensor hidden, Tensor? mask)
    {
        if (mask is null) return hidden.select(1, -1);                             // [B, d]
        var last = mask.to_type(ScalarType.Int64).sum(1).add(LiveScalars.MinusOneInteger, LiveScalars.OneInteger)
            .clamp_min(LiveScalars.ZeroInteger);                                   // [B] int64
        var index = last.view(-1, 1, 1).expand(-1, 1, hidden.shape[2]);            // [B, 1, d]
        return hidden.gather(1, index).squeeze(1);                                 // [B, d]
    }
}
