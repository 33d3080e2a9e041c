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

    /// <summary>
    /// Outputs of the windows of several rows [W, C], rows' windows consecutive → one output per row [B, C]: the mean of
    /// its windows' outputs (logits, before the softmax). Returned unchanged when every row has one window, so short
    /// rows score exactly as without windows.
    /// </summary>
    /// <param name="outputs">Outputs of each window [W, C].</param>
    /// <param name="windowsPerRow">How many consecutive windows belong to each row (each at least 1; sum W).</param>
    public static Tensor MeanOverWindows(Tensor outputs, IReadOnlyList<int> windowsPerRow)
    {
        int rows = windowsPerRow.Count, windows = (int)outputs.shape[0];
        if (rows == windows) return outputs;                                       // [B, C]
        var average = new float[rows * windows];                                   // [B, W]
        for (int r = 0, w = 0; r < rows; w += windowsPerRow[r], r++)
            for (int i = 0; i < windowsPerRow[r]; i++) average[r * windows + w + i] = 1f / windowsPerRow[r];
        using var weights = tensor(average, [rows, windows], device: outputs.device).to_type(outputs.dtype);
        return weights.matmul(outputs);                                            // [B, C]
    }

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
