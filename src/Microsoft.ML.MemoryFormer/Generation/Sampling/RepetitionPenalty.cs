using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation.Sampling;

/// <summary>
/// CTRL's repetition penalty (Keskar et al., 2019, §4.1, in Hugging Face's sign-aware form): for every token already in
/// a row's history, a positive logit is divided by the penalty and a negative one multiplied, so a penalty above 1
/// always lowers the token's probability.
/// </summary>
internal sealed class RepetitionPenalty : ILogitsProcessor
{
    /// <param name="penalty">Greater than 0; 1 leaves logits unchanged.</param>
    public RepetitionPenalty(double penalty)
    {
        if (!(penalty > 0) || double.IsInfinity(penalty))
        {
            throw new ArgumentOutOfRangeException(nameof(penalty), penalty, "penalty must be a finite number > 0.");
        }

        Penalty = penalty;
        factor = penalty;
    }

    /// <summary>The penalty factor.</summary>
    public double Penalty { get; }

    // Owned, not implicit: see Runtime.LiveScalars.
    private readonly Scalar factor;

    /// <inheritdoc />
    public Tensor Process(Tensor logits, IReadOnlyList<IReadOnlyList<int>> history)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(history);
        long batch = logits.shape[0];
        long vocabulary = logits.shape[1];
        if (history.Count != batch)
        {
            throw new ArgumentException($"history has {history.Count} rows but logits have {batch}.", nameof(history));
        }

        if (batch == 0)
        {
            return logits.alias();
        }

        // Pad every row's seen ids to the same length L with that row's first id (a duplicate writes the same value);
        // rows with no history get a slot that keeps its original value.
        int length = Math.Max(1, history.Max(row => row.Count));
        var ids = new long[batch * length];
        var valid = new bool[batch * length];
        for (int b = 0; b < batch; b++)
        {
            int filled = 0;
            foreach (int id in history[b])
            {
                if (id >= 0 && id < vocabulary)
                {
                    ids[(b * length) + filled] = id;
                    valid[(b * length) + filled] = true;
                    filled++;
                }
            }

            for (int i = filled; i < length; i++)
            {
                ids[(b * length) + i] = filled > 0 ? ids[b * length] : 0;
            }
        }

        Tensor index = torch.tensor(ids, [batch, length]).to(logits.device);     // [B, L]
        Tensor mask = torch.tensor(valid, [batch, length]).to(logits.device);    // [B, L]
        Tensor seen = logits.gather(1, index);                                   // [B, L]
        Tensor penalized = torch.where(seen.gt(Runtime.LiveScalars.Zero), seen.div(factor), seen.mul(factor)); // [B, L]
        return logits.scatter(1, index, torch.where(mask, penalized, seen));     // [B, V]
    }
}
