using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>Token rows of unequal length padded to the longest row of the batch (not to the context length).</summary>
internal static class PaddedBatch
{
    /// <summary>Rows → tokens int64 [B, T] and mask bool [B, T] (true = real token; null when no row is padded).</summary>
    public static (Tensor Tokens, Tensor? Mask) Create(IReadOnlyList<int[]> rows, int padId, Device device)
    {
        int b = rows.Count, t = rows.Max(r => r.Length);
        var ids = new long[b * t];
        var real = new bool[b * t];
        bool padded = false;
        for (int i = 0; i < b; i++)
        {
            var row = rows[i];
            padded |= row.Length < t;
            for (int j = 0; j < t; j++)
            {
                ids[i * t + j] = j < row.Length ? row[j] : padId;
                real[i * t + j] = j < row.Length;
            }
        }
        var tokens = tensor(ids, [b, t], device: device);                          // [B, T]
        return (tokens, padded ? tensor(real, [b, t], device: device) : null);     // [B, T]
    }
}
