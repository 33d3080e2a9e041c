using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation.Sampling;

/// <summary>
/// OpenAI's frequency and presence penalties: a token's logit is lowered by <c>frequency · c + presence · [c &gt; 0]</c>,
/// where c counts the token in the row's generated output so far (the prompt does not count). Subtractive, unlike
/// <see cref="RepetitionPenalty"/>, so the same penalty costs a token the same whatever the sign of its logit.
/// </summary>
internal sealed class OutputPenalties : ILogitsProcessor
{
    /// <param name="frequency">Lowered per occurrence; finite.</param>
    /// <param name="presence">Lowered once a token has occurred; finite.</param>
    public OutputPenalties(double frequency, double presence)
    {
        if (!double.IsFinite(frequency)) throw new ArgumentOutOfRangeException(nameof(frequency), frequency, "frequency must be finite.");
        if (!double.IsFinite(presence)) throw new ArgumentOutOfRangeException(nameof(presence), presence, "presence must be finite.");
        Frequency = frequency;
        Presence = presence;
    }

    /// <summary>The penalty per occurrence.</summary>
    public double Frequency { get; }

    /// <summary>The penalty once a token has occurred.</summary>
    public double Presence { get; }

    /// <inheritdoc />
    /// <param name="logits">[B, V] float logits.</param>
    /// <param name="history">Per row, the ids generated so far (not the prompt).</param>
    public Tensor Process(Tensor logits, IReadOnlyList<IReadOnlyList<int>> history)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(history);
        long batch = logits.shape[0], vocabulary = logits.shape[1];
        if (history.Count != batch)
            throw new ArgumentException($"history has {history.Count} rows but logits have {batch}.", nameof(history));

        // Each row's distinct generated ids with their penalty, padded to the longest row with id 0 and penalty 0.
        var counts = history.Select(row => row.Where(id => id >= 0 && id < vocabulary).GroupBy(id => id)
            .Select(g => (Id: g.Key, Count: g.Count())).ToArray()).ToArray();
        int length = Math.Max(1, counts.Max(row => row.Length));
        var ids = new long[batch * length];
        var penalties = new float[batch * length];
        for (int b = 0; b < batch; b++)
        {
            for (int i = 0; i < counts[b].Length; i++)
            {
                ids[(b * length) + i] = counts[b][i].Id;
                penalties[(b * length) + i] = (float)-((Frequency * counts[b][i].Count) + Presence);
            }
        }

        Tensor index = torch.tensor(ids, [batch, length]).to(logits.device);            // [B, L]
        Tensor change = torch.tensor(penalties, [batch, length]).to(logits.device);     // [B, L]
        return logits.scatter_add(1, index, change);                                    // [B, V]
    }
}
