using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation.Sampling;

/// <summary>
/// Nucleus truncation (Holtzman et al., 2020): keeps, per row, the smallest set of most likely tokens whose total
/// probability reaches p, and always the most likely token; the rest become -∞.
/// </summary>
internal sealed class TopP : ILogitsProcessor
{
    /// <param name="p">In (0, 1]; 1 keeps everything.</param>
    public TopP(double p)
    {
        if (!(p > 0 && p <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(p), p, "p must be in (0, 1].");
        }

        P = p;
        threshold = p;
    }

    /// <summary>Probability mass to keep.</summary>
    public double P { get; }

    // Owned, not implicit: see Runtime.LiveScalars.
    private readonly Scalar threshold;

    /// <inheritdoc />
    public Tensor Process(Tensor logits, IReadOnlyList<IReadOnlyList<int>> history)
    {
        if (P >= 1)
        {
            return logits.alias();
        }

        (Tensor sorted, Tensor order) = logits.sort(dim: -1, descending: true);   // [B, V] each
        Tensor probabilities = sorted.softmax(-1);                                // [B, V]
        Tensor massBefore = Runtime.LiveScalars.Subtract(probabilities.cumsum(-1), probabilities); // [B, V] mass of more likely tokens
        Tensor dropSorted = massBefore.ge(threshold);                             // [B, V] first column always false
        Tensor drop = torch.zeros_like(dropSorted).scatter(-1, order, dropSorted); // [B, V] back in id order
        return logits.masked_fill(drop, Runtime.LiveScalars.NegativeInfinity);
    }
}
