using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// The adaptive softmax output head (Grave et al. 2017, "Efficient softmax approximation for GPUs"; the layout of
/// PyTorch's <c>nn.AdaptiveLogSoftmaxWithLoss</c>), chosen by <see cref="MemoryFormerConfig.AdaptiveSoftmaxCutoffs"/>.
/// Tokens are ranked by training-text frequency (<see cref="SetTokenCounts"/>); the head scores the ranks below the
/// first cutoff plus one logit per tail cluster, and tail cluster i scores its ranks through a projection to
/// d / 4^(i+1) dimensions. The probabilities are exact and normalised: P(token) = P_head(token) for a head token and
/// P_head(cluster i) · P_i(token) for a tail token, so perplexity stays exact.
/// </summary>
internal sealed class AdaptiveSoftmaxHead : nn.Module
{
    /// <summary>Divisor of the tail widths, d / 4^(i+1) (PyTorch's default <c>div_value</c>).</summary>
    public const int Divisor = 4;

    private readonly Linear head;                      // [s + c, d]: shortlist logits then one logit per cluster
    private readonly ModuleList<Linear> down;          // i: [d / 4^(i+1), d]
    private readonly ModuleList<Linear> up;            // i: [size_i, d / 4^(i+1)]
    private readonly Tensor token_rank;                // int64 [V]: token id → frequency rank (0 = most frequent)
    private readonly int[] bounds;                     // [s, cutoff_1, …, V]: cluster i holds ranks bounds[i] … bounds[i+1]−1

    /// <summary>Builds the head with fresh weights and the identity ranking (token id = rank).</summary>
    public AdaptiveSoftmaxHead(MemoryFormerConfig config) : base(nameof(AdaptiveSoftmaxHead))
    {
        var cutoffs = config.AdaptiveSoftmaxCutoffs ?? throw new ArgumentException("The config has no adaptive softmax cutoffs.", nameof(config));
        bounds = [.. cutoffs, config.VocabularySize];
        int d = config.Width, clusters = cutoffs.Length;
        head = nn.Linear(d, bounds[0] + clusters, hasBias: false);
        down = nn.ModuleList(Enumerable.Range(0, clusters).Select(i => nn.Linear(d, TailWidth(d, i), hasBias: false)).ToArray());
        up = nn.ModuleList(Enumerable.Range(0, clusters).Select(i => nn.Linear(TailWidth(d, i), bounds[i + 1] - bounds[i], hasBias: false)).ToArray());
        using (no_grad())
        {
            head.weight!.normal_(0, config.EmbeddingInitStd);
            foreach (var p in down) p.weight!.normal_(0, 1.0 / Math.Sqrt(d));   // keeps the projected hidden at the hidden's scale
            foreach (var p in up) p.weight!.normal_(0, config.EmbeddingInitStd);
        }
        using Scalar vocabulary = (long)config.VocabularySize;                  // named: see Runtime/LiveScalars.cs
        token_rank = arange(LiveScalars.ZeroInteger, vocabulary, LiveScalars.OneInteger, dtype: ScalarType.Int64).DetachFromDisposeScope(); // [V]
        RegisterComponents();
    }

    /// <summary>Width of tail cluster <paramref name="cluster"/>'s projection, d / 4^(i+1) (PyTorch: <c>in_features // div_value ** (i + 1)</c>).</summary>
    public static int TailWidth(int width, int cluster) => (int)(width / Math.Pow(Divisor, cluster + 1));

    /// <summary>Parameters of the head for <paramref name="config"/> (for the loaders' size check).</summary>
    public static double ParameterCount(MemoryFormerConfig config)
    {
        var c = config.AdaptiveSoftmaxCutoffs!;
        int[] b = [.. c, config.VocabularySize];
        double total = (double)config.Width * (c[0] + c.Length);
        for (int i = 0; i < c.Length; i++)
            total += (double)TailWidth(config.Width, i) * (config.Width + b[i + 1] - b[i]);
        return total;
    }

    /// <summary>The frequency rank of every token id, int64 [V].</summary>
    public Tensor TokenRank => token_rank;

    /// <summary>
    /// Ranks the tokens by <paramref name="counts"/> (count per token id, training text), most frequent first, ties by
    /// the lower id, so the head and the first clusters hold the frequent tokens.
    /// </summary>
    public void SetTokenCounts(long[] counts)
    {
        if (counts.Length != token_rank.shape[0])
            throw new ArgumentException($"Expected a count per token id ({token_rank.shape[0]}); got {counts.Length}.", nameof(counts));
        var order = Enumerable.Range(0, counts.Length).OrderByDescending(i => counts[i]).ThenBy(i => i).ToArray(); // rank → id
        var rank = new long[counts.Length];
        for (int r = 0; r < order.Length; r++) rank[order[r]] = r;
        using (no_grad())
            token_rank.copy_(tensor(rank, device: token_rank.device));
    }

    /// <summary>log P(target | hidden) for every row, hidden [N, d], targets int64 [N] → [N], without the [N, V] matrix.</summary>
    public Tensor TargetLogProbs(Tensor hidden, Tensor targets)
    {
        var ranks = token_rank.index_select(0, targets);                          // [N]
        var headLogProbs = F.log_softmax(head.call(hidden), 1);                   // [N, s + c]
        var column = ranks;                                                       // [N]: head column of each row's token or cluster
        var inCluster = new Tensor[down.Count];
        for (int i = 0; i < down.Count; i++)
        {
            // Named scalars, disposed here: an implicit one could be finalized while the op reads it (Runtime/LiveScalars.cs).
            using Scalar low = (long)bounds[i], high = (long)bounds[i + 1], slot = (long)(bounds[0] + i);
            inCluster[i] = ranks.ge(low).logical_and(ranks.lt(high));             // [N]
            column = where(inCluster[i], full_like(ranks, slot), column);
        }
        var result = headLogProbs.gather(1, column.unsqueeze(1)).squeeze(1);     // [N]
        for (int i = 0; i < down.Count; i++)
        {
            var rows = inCluster[i].nonzero().squeeze(1);                         // [n_i]
            if (rows.shape[0] == 0) continue;
            using Scalar low = (long)bounds[i];
            var local = ranks.index_select(0, rows).sub(low);                     // [n_i]
            var tail = ClusterLogProbs(hidden.index_select(0, rows), i);          // [n_i, size_i]
            result = result.index_add(0, rows, tail.gather(1, local.unsqueeze(1)).squeeze(1), LiveScalars.One); // [N]
        }
        return result;
    }

    /// <summary>log P(token | hidden) over the whole vocabulary, hidden [N, d] → [N, V] in token-id order.</summary>
    public Tensor LogProbs(Tensor hidden)
    {
        var headLogProbs = F.log_softmax(head.call(hidden), 1);                   // [N, s + c]
        var parts = new List<Tensor> { headLogProbs.narrow(1, 0, bounds[0]) };   // [N, s]
        for (int i = 0; i < down.Count; i++)
            parts.Add(LiveScalars.Add(ClusterLogProbs(hidden, i), headLogProbs.narrow(1, bounds[0] + i, 1))); // [N, size_i]
        return cat(parts, 1).index_select(1, token_rank);                         // [N, V]: column id = rank[id]
    }

    /// <summary>log P(rank | cluster i, hidden) over the cluster's ranks, hidden [n, d] → [n, size_i].</summary>
    private Tensor ClusterLogProbs(Tensor hidden, int cluster) =>
        F.log_softmax(up[cluster].call(down[cluster].call(hidden)), 1);
}
