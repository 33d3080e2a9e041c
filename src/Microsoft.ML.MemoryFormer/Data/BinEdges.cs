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
    /// <param name="weights">Tree binning: each row's example weight in the impurities (null: one each); quantiles count rows.</param>
    public static float[][] Fit(float[] features, int featureCount, int bins, TabularBinning binning, float[] labels, int classes,
        int? minLeafRows = null, float[]? weights = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, 1);
        if (minLeafRows is { } least) ArgumentOutOfRangeException.ThrowIfLessThan(least, 1, nameof(minLeafRows));
        int rows = featureCount == 0 ? 0 : features.Length / featureCount;
        var edges = new float[featureCount][];
        for (int slot = 0; slot < featureCount; slot++)
        {
            var present = Enumerable.Range(0, rows).Where(r => !float.IsNaN(features[r * featureCount + slot]))
                .Select(r => (Value: features[r * featureCount + slot], Row: r)).ToArray();
            Array.Sort(present, static (a, b) => a.Value != b.Value ? a.Value.CompareTo(b.Value) : a.Row.CompareTo(b.Row));  // by value, ties by row
            var order = present.Select(p => p.Row).ToArray();
            var values = present.Select(p => p.Value).ToArray();
            edges[slot] = values.Length == 0 || values[0] == values[^1]
                ? [values.Length == 0 ? 0f : values[0], (values.Length == 0 ? 0f : values[0]) + 1f]
                : TwoValued(values) ? [values[0], values[^1]]
                : binning == TabularBinning.Quantile ? Quantiles(values, bins)
                : Tree(values, order.Select(r => labels[r]).ToArray(), weights is null ? null : order.Select(r => weights[r]).ToArray(),
                    classes, bins, minLeafRows ?? MinLeaf(values.Length, bins));
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

    /// <summary>
    /// Thresholds of a best-first tree of at most <paramref name="bins"/> leaves on one slot, plus its min and max. Each
    /// round splits the leaf whose best split gains most (the first such leaf, and within it the first such split); a
    /// leaf's best split is found once, when the leaf is made, by one scan with running class counts, so memory is
    /// O(rows + classes) and time O(rows × depth × classes) (a table of a million rows and a hundred classes needs no
    /// rows × classes prefix table). With <paramref name="weights"/> every sum is weighted (the leaf sizes stay in rows).
    /// </summary>
    private static float[] Tree(float[] sorted, float[] labels, float[]? weights, int classes, int bins, int minLeaf)
    {
        var impurity = new SegmentImpurity(labels, weights, classes);
        var leaves = new List<(int Start, int End, double Gain, int Split)> { impurity.BestSplit(sorted, 0, sorted.Length, minLeaf) };
        var thresholds = new List<float>();
        while (leaves.Count < bins)
        {
            int bestLeaf = -1;
            double bestGain = 1e-12;
            for (int l = 0; l < leaves.Count; l++)
                if (leaves[l].Gain > bestGain) (bestGain, bestLeaf) = (leaves[l].Gain, l);
            if (bestLeaf < 0) break;
            var (start, end, _, split) = leaves[bestLeaf];
            leaves[bestLeaf] = impurity.BestSplit(sorted, start, split, minLeaf);
            leaves.Add(impurity.BestSplit(sorted, split, end, minLeaf));
            thresholds.Add((sorted[split - 1] + sorted[split]) / 2);
        }
        thresholds.Sort();
        var edges = new List<float> { sorted[0] };
        foreach (var t in thresholds) if (t > edges[^1] && t < sorted[^1]) edges.Add(t);
        edges.Add(sorted[^1]);
        return [.. edges];
    }

    /// <summary>
    /// A segment's impurity Σ_c (Σw·y_c² − (Σw·y_c)² / Σw): Σw × Gini over one-hot classes, or the weighted squared error of
    /// a regression value (w = 1 without example weights). Regression reads prefix sums of w, w·y and w·y² (arrays of rows +
    /// 1); classification sums each class's weight in a running scan (without weights its sums are whole numbers, so a running
    /// count and a prefix difference are the same double).
    /// </summary>
    private sealed class SegmentImpurity
    {
        private readonly float[] labels;
        private readonly float[]? weights;
        private readonly int classes;
        private readonly double[] size;                      // prefix sums of the weights (row counts without weights)
        private readonly double[]? sum, squares;             // regression prefix sums
        private readonly double[] left, whole;               // classification weights of a scan's left part and of its leaf

        public SegmentImpurity(float[] labels, float[]? weights, int classes)
        {
            (this.labels, this.weights, this.classes) = (labels, weights, classes);
            left = new double[Math.Max(classes, 1)];
            whole = new double[Math.Max(classes, 1)];
            size = new double[labels.Length + 1];
            for (int i = 0; i < labels.Length; i++) size[i + 1] = size[i] + (weights?[i] ?? 1);
            if (classes > 0) return;
            sum = new double[labels.Length + 1];
            squares = new double[labels.Length + 1];
            for (int i = 0; i < labels.Length; i++)
            {
                double y = labels[i], w = weights?[i] ?? 1;
                sum[i + 1] = sum[i] + w * y;
                squares[i + 1] = squares[i] + w * y * y;
            }
        }

        /// <summary>The leaf [start, end) with its best split: the first split of the largest gain above none (gain 0, split −1
        /// when no split of at least <paramref name="minLeaf"/> rows a side between distinct values gains anything).</summary>
        public (int Start, int End, double Gain, int Split) BestSplit(float[] sorted, int start, int end, int minLeaf)
        {
            double bestGain = 1e-12;
            int bestSplit = -1;
            if (classes > 0)
            {
                Array.Clear(left);
                Array.Clear(whole);
                for (int i = start; i < end; i++) whole[(int)labels[i]] += weights?[i] ?? 1;
            }
            double all = Impurity(start, end, whole);
            for (int split = start + 1; split < end; split++)
            {
                if (classes > 0) left[(int)labels[split - 1]] += weights?[split - 1] ?? 1;
                if (split < start + minLeaf || split > end - minLeaf) continue;
                if (sorted[split - 1] == sorted[split]) continue;    // a threshold must separate distinct values
                double gain = all - Impurity(start, split, left) - RightImpurity(split, end);
                if (gain > bestGain) (bestGain, bestSplit) = (gain, split);
            }
            return (start, end, bestSplit < 0 ? 0 : bestGain, bestSplit);
        }

        private double RightImpurity(int split, int end)
        {
            if (classes == 0) return Impurity(split, end, whole);
            double count = size[end] - size[split];
            if (count <= 0) return 0;                            // rows of weight 0 only
            double total = count;                                // Σw·y² of one-hot rows: each row's weight
            for (int c = 0; c < classes; c++)
            {
                double s = whole[c] - left[c];
                total -= s * s / count;
            }
            return total;
        }

        private double Impurity(int start, int end, double[] counts)
        {
            double count = size[end] - size[start];
            if (count <= 0) return 0;                            // rows of weight 0 only
            if (classes > 0)
            {
                double total = count;
                for (int c = 0; c < classes; c++) total -= counts[c] * counts[c] / count;
                return total;
            }
            double s = sum![end] - sum[start];
            return squares![end] - squares[start] - s * s / count;
        }
    }

    /// <summary>Fewest rows a tree leaf may hold by default: a quarter of an equal share of the rows per bin, between 1 and 64.</summary>
    internal static int MinLeaf(int rows, int bins) => Math.Clamp(rows / (4 * bins), 1, 64);
}
