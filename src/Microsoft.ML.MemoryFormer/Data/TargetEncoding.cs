namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// Target encoding of one categorical group of slots (a one-hot column, or a slot's <see cref="ValueCategories"/>):
/// per category, the smoothed mean of the training label, (Σ y + m · prior) / (n + m) (Micci-Barreca 2001; with example
/// weights Σ w·y and Σ w in place of Σ y and n, so m counts in units of weight), one value
/// per output (regression: the label; binary: P(class 1); multiclass: P(class k) for every k). A row's category is the
/// first slot of the group at ≥ 0.5, or "none" (the last entry) when no slot is. The training rows themselves are
/// encoded out of fold (<see cref="FitOutOfFold"/>), so no row sees its own label.
/// </summary>
/// <param name="First">First slot of the group, in the vector the group lives in (input slots, then value categories).</param>
/// <param name="Count">Slots in the group.</param>
/// <param name="Means">[outputs][Count + 1]: the encoded value of each category and of "none", fitted on every training row.</param>
internal sealed record TargetEncoding(int First, int Count, float[][] Means)
{
    /// <summary>The category of <paramref name="row"/> (one row of the vector the group lives in): 0 … Count − 1, or Count for none.</summary>
    public int CategoryOf(ReadOnlySpan<float> row)
    {
        for (int i = 0; i < Count; i++)
            if (row[First + i] >= 0.5f) return i;
        return Count;
    }

    /// <summary>
    /// Fits the encoding of the group [<paramref name="first"/>, first + <paramref name="count"/>) of
    /// <paramref name="features"/> [N, F] and returns it with the training rows' out-of-fold values [outputs][N]: each of
    /// the <paramref name="folds"/> folds (<paramref name="foldOf"/>, from <see cref="Folds"/>) is encoded with the
    /// statistics of the others.
    /// </summary>
    /// <param name="features">Rows [N, F] holding the group.</param>
    /// <param name="featureCount">F.</param>
    /// <param name="first">The group's first slot.</param>
    /// <param name="count">Its slots.</param>
    /// <param name="foldOf">Each row's fold.</param>
    /// <param name="folds">K.</param>
    /// <param name="targets">[outputs][N]: per output, each row's target (the label, or 1 where the row is of class k).</param>
    /// <param name="smoothing">m, the prior's weight in rows.</param>
    /// <param name="weights">Each row's example weight, or null for one each.</param>
    public static (TargetEncoding Encoding, float[][] OutOfFold) FitOutOfFold(float[] features, int featureCount, int first, int count,
        float[][] targets, int[] foldOf, int folds, double smoothing, float[]? weights = null)
    {
        int rows = foldOf.Length;
        var category = new int[rows];
        var probe = new TargetEncoding(first, count, []);
        for (int r = 0; r < rows; r++) category[r] = probe.CategoryOf(features.AsSpan(r * featureCount, featureCount));
        var means = new float[targets.Length][];
        var outOfFold = new float[targets.Length][];
        for (int k = 0; k < targets.Length; k++)
        {
            var (sums, counts) = Tally(category, targets[k], weights, foldOf, folds, count + 1); // [folds + 1, C + 1]
            means[k] = Smoothed(sums[folds], counts[folds], smoothing);                        // every row
            outOfFold[k] = new float[rows];
            for (int f = 0; f < folds; f++)
            {
                var rest = Smoothed(Minus(sums[folds], sums[f]), Minus(counts[folds], counts[f]), smoothing);
                for (int r = 0; r < rows; r++)
                    if (foldOf[r] == f) outOfFold[k][r] = rest[category[r]];
            }
        }
        return (new TargetEncoding(first, count, means), outOfFold);
    }

    /// <summary>Each row's fold: a <paramref name="seed"/>ed shuffle of the rows dealt round-robin into <paramref name="folds"/>.</summary>
    public static int[] Folds(int rows, int folds, int seed)
    {
        var order = Enumerable.Range(0, rows).ToArray();
        new Random(seed).Shuffle(order);
        var foldOf = new int[rows];
        for (int i = 0; i < rows; i++) foldOf[order[i]] = i % folds;
        return foldOf;
    }

    /// <summary>Whether this record fits a vector of <paramref name="slots"/> slots and <paramref name="outputs"/> outputs.</summary>
    public bool IsValid(int slots, int outputs) =>
        First >= 0 && Count >= 1 && First + Count <= slots && Means is not null && Means.Length == outputs
        && Means.All(m => m is not null && m.Length == Count + 1 && m.All(float.IsFinite));

    /// <summary>Per fold (and, at index folds, over all rows): the (weighted) sum of targets and the row count (summed weight)
    /// of each category.</summary>
    private static (double[][] Sums, double[][] Counts) Tally(int[] category, float[] target, float[]? weights, int[] foldOf, int folds,
        int categories)
    {
        var sums = new double[folds + 1][];
        var counts = new double[folds + 1][];
        for (int f = 0; f <= folds; f++) (sums[f], counts[f]) = (new double[categories], new double[categories]);
        for (int r = 0; r < category.Length; r++)
        {
            double w = weights?[r] ?? 1;
            sums[foldOf[r]][category[r]] += w * target[r];
            counts[foldOf[r]][category[r]] += w;
            sums[folds][category[r]] += w * target[r];
            counts[folds][category[r]] += w;
        }
        return (sums, counts);
    }

    /// <summary>(sum + m · prior) / (count + m) per category, the prior being the mean over all categories.</summary>
    private static float[] Smoothed(double[] sums, double[] counts, double smoothing)
    {
        double total = counts.Sum();
        double prior = total > 0 ? sums.Sum() / total : 0;
        return sums.Select((s, c) => (float)((s + smoothing * prior) / (counts[c] + smoothing))).ToArray();
    }

    private static double[] Minus(double[] all, double[] part) => all.Select((a, i) => a - part[i]).ToArray();
}
