using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation.Sampling;

/// <summary>Top-k truncation (Fan et al., 2018): keeps exactly the k largest logits per row, sets the rest to -∞.</summary>
/// <remarks>Ties at the k-th value are broken by <c>topk</c>, so exactly k tokens survive.</remarks>
internal sealed class TopK : ILogitsProcessor
{
    /// <param name="k">At least 1.</param>
    public TopK(int k)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        K = k;
    }

    /// <summary>Tokens kept per row.</summary>
    public int K { get; }

    /// <inheritdoc />
    public Tensor Process(Tensor logits, IReadOnlyList<IReadOnlyList<int>> history)
    {
        if (K >= logits.shape[^1])
        {
            return logits.alias();
        }

        (Tensor values, Tensor indices) = logits.topk(K, dim: -1);                               // [B, k] each
        return torch.full_like(logits, Runtime.LiveScalars.NegativeInfinity).scatter(-1, indices, values); // [B, V]
    }
}
