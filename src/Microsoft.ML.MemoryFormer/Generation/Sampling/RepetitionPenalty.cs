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

        // Each row's distinct seen ids (a long generation repeats ids: the tensors stay ≤ V wide however long the
        // history), padded to the same length L with the row's first id (a duplicate writes the same value); rows
        // with no history get a slot that keeps its original value.
        var distinct = new List<int>[batch];
        for (int b = 0; b < batch; b++)
        {
            var seenIds = new HashSet<int>();
            distinct[b] = [];
            foreach (int id in history[b])
            {
                if (id >= 0 && id < vocabulary && seenIds.Add(id))
                {
                    distinct[b].Add(id);
                }
            }
        }

        int length = Math.Max(1, distinct.Max(row => row.Count));
        var ids = new long[batch * length];
        var valid = new bool[batch * length];
        for (int b = 0; b < batch; b++)
        {
            var row = distinct[b];
            for (int i = 0; i < length; i++)
            {
                ids[(b * length) + i] = i < row.Count ? row[i] : row.Count > 0 ? row[0] : 0;
                valid[(b * length) + i] = i < row.Count;
            }
        }

        Tensor index = torch.tensor(ids, [batch, length]).to(logits.device);     // [B, L]
        Tensor mask = torch.tensor(valid, [batch, length]).to(logits.device);    // [B, L]
        Tensor seen = logits.gather(1, index);                                   // [B, L]
        Tensor penalized = torch.where(seen.gt(Runtime.LiveScalars.Zero), seen.div(factor), seen.mul(factor)); // [B, L]
        return logits.scatter(1, index, torch.where(mask, penalized, seen));     // [B, V]
    }
}
