namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// Groups the token windows of several rows into scoring batches: the windows are sorted by length, longest first, and
/// cut into consecutive batches of at most a token budget (windows × the batch's longest window), each padded only to its
/// own longest window. Where to cut is chosen to minimise an estimated cost: a fixed cost per batch (the encoder's ops
/// run once per batch, whatever its size) plus the padded tokens, each costing more the longer the window (attention
/// reads every key of it). A run of windows of one length (the full windows of long rows) is then scored unpadded and
/// without an attention mask. Each window is scored on its own, so the grouping changes no result beyond float rounding.
/// </summary>
internal static class WindowBatches
{
    /// <summary>The fixed cost of one batch, in tokens of a short window (≈ 60 torch ops of ≈ 10–20 µs on 2 cores).</summary>
    internal const double BatchCost = 256;

    /// <summary>The window length at which attention costs a token as much again as the rest of the encoder (d = 128).</summary>
    internal const double AttentionLength = 128;

    /// <summary>The batches, each a list of window indices, longest window first.</summary>
    /// <param name="lengths">Tokens of each window (each at least 1).</param>
    /// <param name="tokenBudget">Most padded tokens per batch; a single window longer than it forms a batch alone.</param>
    public static List<int[]> Plan(IReadOnlyList<int> lengths, int tokenBudget)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        ArgumentOutOfRangeException.ThrowIfLessThan(tokenBudget, 1);
        var order = Enumerable.Range(0, lengths.Count).OrderByDescending(i => lengths[i]).ThenBy(i => i).ToArray();
        int n = order.Length;
        var best = new double[n + 1];                                            // best[i]: cheapest cover of the first i
        var cut = new int[n + 1];                                                // where the last batch of that cover starts
        for (int i = 1; i <= n; i++)
        {
            best[i] = double.PositiveInfinity;
            for (int j = i - 1; j >= 0; j--)
            {
                int longest = lengths[order[j]], count = i - j;
                if (count > 1 && (long)count * longest > tokenBudget) break;      // longer batches only grow from here
                double cost = best[j] + BatchCost + count * longest * (1 + longest / AttentionLength);
                if (cost < best[i]) (best[i], cut[i]) = (cost, j);
            }
        }
        var batches = new List<int[]>();
        for (int i = n; i > 0; i = cut[i]) batches.Add(order[cut[i]..i]);
        batches.Reverse();
        return batches;
    }
}
