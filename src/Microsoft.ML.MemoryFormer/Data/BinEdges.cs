using Microsoft.ML.MemoryFormer.Configuration;

namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// Per-slot bin edges of piecewise-linear encoding (Gorishniy et al., NeurIPS 2022, §3.2), learned on the (standardised)
/// training rows: for each slot a strictly increasing array b₀ &lt; b₁ &lt; … &lt; b_T with 1 ≤ T ≤ the requested bin count,
/// b₀ the slot's smallest and b_T its largest value. A slot with two distinct values (a one-hot slot) gets one bin, whose
/// encoding is linear in the value; a constant or all-missing slot gets the single bin [v, v + 1].
/// Deterministic: the result depends only on the values, never on row order.
/// </summary>
internal static class BinEdges
{
    /// <summary>Edges of every slot of <paramref name="features"/> [N, F] row-major (NaN ignored).</summary>
    /// <param name="features">Standardised training features.</param>
    /// <param name="featureCount">F.</param>
    /// <param name="bins">T, the most bins a slot may get (≥ 1).</param>
    /// <param name="binning">Quantile or tree edges.</param>
    /// <param name="labels">Training labels (regression value or 0-based class); read by tree binning only.</param>
    /// <param name="classes">Class count, or 0 for regression.</param>
    /// <param name="minLeafRows">Tree binning: the fewest rows a bin may hold; null takes <see cref="MinLeaf"/>'s rule.</param>
    public static float[][] Fit(float[] features, int featureCount, int bins, TabularBinning binning, float[] labels, int classes,
        int? minLeafRows = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, 1);
        if (minLeafRows is { } least) ArgumentOutOfRangeException.ThrowIfLessThan(least, 1, nameof(minLeafRows));
        int rows = featureCount == 0 ? 0 : features.Length / featureCount;
        var edges = new float[featureCount][];
        for (int slot = 0; slot < featureCount; slot++)
        {
            var order = Enumerable.Range(0, rows).Where(r => !float.IsNaN(features[r * featureCount + slot]))
                .OrderBy(r => features[r * featureCount + slot]).ThenBy(r => r).ToArray();
            var values = order.Select(r => features[r * featureCount + slot]).ToArray();
            edges[slot] = values.Length == 0 || values[0] == values[^1]
                ? [values.Length == 0 ? 0f : values[0], (values.Length == 0 ? 0f : values[0]) + 1f]
                : TwoValued(values) ? [values[0], values[^1]]
                : binning == TabularBinning.Quantile ? Quantiles(values, bins)
                : Tree(values, order.Select(r => labels[r]).ToArray(), classes, bins, minLeafRows ?? MinLeaf(values.Length, bins));
        }
        return edges;
    }

    /// <summary>Whether the sorted values take exactly two distinct values (a one-hot or flag slot): one bin suffices.</summary>
    private static bool TwoValued(float[] sorted) => Array.FindIndex(sorted, v => v != sorted[0]) is var i && i > 0
        && sorted[i] == sorted[^1];

    /// <summary>The slot's quantiles at t / T, t = 0..T (nearest lower rank), repeats merged.</summary>
    private static float[] Quantiles(float[] sorted, int bins)
    {
        var edges = new List<float>(bins + 1);
        for (int t = 0; t <= bins; t++)
        {
            float q = sorted[(int)((long)t * (sorted.Length - 1) / bins)];
            if (edges.Count == 0 || q > edges[^1]) edges.Add(q);
        }
        return [.. edges];
    }

    /// <summary>Thresholds of a best-first tree of at most <paramref name="bins"/> leaves on one slot, plus its min and max.</summary>
    private static float[] Tree(float[] sorted, float[] labels, int classes, int bins, int minLeaf)
    {
        int n = sorted.Length, width = classes > 0 ? classes : 1;
        // prefix sums of the target vector (one-hot class or the value) and of its squares: a segment's impurity is
        // Σ_c (Σy_c² − (Σy_c)² / n), the squared error for regression and n × Gini for classes
        var sum = new double[(n + 1) * width];
        var squares = new double[n + 1];
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < width; c++) sum[(i + 1) * width + c] = sum[i * width + c];
            double y = classes > 0 ? 1 : labels[i];
            sum[(i + 1) * width + (classes > 0 ? (int)labels[i] : 0)] += y;
            squares[i + 1] = squares[i] + y * y;
        }
        var leaves = new List<(int Start, int End)> { (0, n) };
        var thresholds = new List<float>();
        while (leaves.Count < bins)
        {
            int bestLeaf = -1, bestSplit = -1;
            double bestGain = 1e-12;
            for (int l = 0; l < leaves.Count; l++)
            {
                var (start, end) = leaves[l];
                double whole = Impurity(start, end);
                for (int split = start + minLeaf; split <= end - minLeaf; split++)
                {
                    if (sorted[split - 1] == sorted[split]) continue;    // a threshold must separate distinct values
                    double gain = whole - Impurity(start, split) - Impurity(split, end);
                    if (gain > bestGain) (bestGain, bestLeaf, bestSplit) = (gain, l, split);
                }
            }
            if (bestLeaf < 0) break;
            var leaf = leaves[bestLeaf];
            leaves[bestLeaf] = (leaf.Start, bestSplit);
            leaves.Add((bestSplit, leaf.End));
            thresholds.Add((sorted[bestSplit - 1] + sorted[bestSplit]) / 2);
        }
        thresholds.Sort();
        var edges = new List<float> { sorted[0] };
        foreach (var t in thresholds) if (t > edges[^1] && t < sorted[^1]) edges.Add(t);
        edges.Add(sorted[^1]);
        return [.. edges];

        double Impurity(int start, int end)
        {
            int count = end - start;
            double total = squares[end] - squares[start];
            for (int c = 0; c < width; c++)
            {
                double s = sum[end * width + c] - sum[start * width + c];
                total -= s * s / count;
            }
            return total;
        }
    }

    /// <summary>Fewest rows a tree leaf may hold by default: a quarter of an equal share of the rows per bin, between 1 and 64.</summary>
    internal static int MinLeaf(int rows, int bins) => Math.Clamp(rows / (4 * bins), 1, 64);
}
