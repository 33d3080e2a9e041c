namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>What <see cref="FeatureExpansion.Fit"/> adds, from the tabular trainer's options.</summary>
/// <param name="ValueCategories">Whether spike or few-valued numeric slots also get a categorical token (<see cref="Data.ValueCategories"/>).</param>
/// <param name="MaxDistinct">A slot with at most this many distinct training values qualifies.</param>
/// <param name="MinRows">The fewest training rows a value needs to be a category.</param>
/// <param name="TargetEncodingFolds">K of out-of-fold target encoding of the categorical groups; 0 = none.</param>
/// <param name="Smoothing">m, the prior's weight of the target encoding, in rows.</param>
internal sealed record ExpansionSettings(bool ValueCategories, int MaxDistinct, int MinRows, int TargetEncodingFolds, double Smoothing)
{
    /// <summary>Whether anything is added.</summary>
    public bool Any => ValueCategories || TargetEncodingFolds > 0;
}

/// <summary>
/// Slots appended to every row before standardisation, fitted on the training rows only and saved with the model: the
/// input's F slots, then the one-hot slots of each <see cref="Data.ValueCategories"/>, then one slot per output of each
/// <see cref="TargetEncoding"/>. Scoring rows get the encodings fitted on every training row; the training rows get
/// out-of-fold encodings.
/// </summary>
/// <param name="InputCount">F, the slots of the feature column.</param>
/// <param name="ValueCategories">The numeric slots that also became categories.</param>
/// <param name="TargetEncodings">The target-encoded groups (slots of the input and value-category vector).</param>
internal sealed record FeatureExpansion(int InputCount, ValueCategories[] ValueCategories, TargetEncoding[] TargetEncodings)
{
    /// <summary>Slots after the value categories: F + Σ values.</summary>
    public int CategorisedCount => InputCount + ValueCategories.Sum(v => v.Values.Length);

    /// <summary>Slots of an expanded row.</summary>
    public int OutputCount => CategorisedCount + TargetEncodings.Sum(t => t.Means.Length);

    /// <summary>
    /// Fits the expansion on the raw training rows and returns it with those rows expanded (target encodings out of fold),
    /// or null when <paramref name="settings"/> adds nothing or nothing qualifies.
    /// </summary>
    /// <param name="train">The raw training rows [N, F] and their labels.</param>
    /// <param name="settings">What to add.</param>
    /// <param name="classes">Class count, or 0 for regression.</param>
    /// <param name="seed">Deals the rows into the target encoding's folds.</param>
    public static (FeatureExpansion Expansion, float[] Train)? Fit(TabularData train, ExpansionSettings settings, int classes, int seed)
    {
        if (!settings.Any) return null;
        int f = train.FeatureCount, rows = train.Rows;
        var categories = settings.ValueCategories
            ? Data.ValueCategories.Find(train.Features, f, settings.MaxDistinct, settings.MinRows) : [];
        var partial = new FeatureExpansion(f, categories, []);
        var categorised = partial.Categorise(train.Features, rows);                          // [N, F + V]
        if (settings.TargetEncodingFolds == 0)
            return categories.Length == 0 ? null : (partial, categorised);
        var groups = Groups(train.Features, f, partial);
        if (groups.Count == 0 && categories.Length == 0) return null;
        var targets = Targets(train.Labels, classes);                                        // [outputs][N]
        var foldOf = TargetEncoding.Folds(rows, settings.TargetEncodingFolds, seed);
        var encodings = new List<TargetEncoding>();
        var columns = new List<float[]>();                                                   // [slots][N]
        foreach (var (first, count) in groups)
        {
            var (encoding, outOfFold) = TargetEncoding.FitOutOfFold(categorised, partial.CategorisedCount, first, count,
                targets, foldOf, settings.TargetEncodingFolds, settings.Smoothing, train.Weights);
            encodings.Add(encoding);
            columns.AddRange(outOfFold);
        }
        var expansion = partial with { TargetEncodings = [.. encodings] };
        return (expansion, Append(categorised, rows, partial.CategorisedCount, columns));
    }

    /// <summary>Raw rows [n, F] → expanded rows [n, <see cref="OutputCount"/>], with the encodings of every training row.</summary>
    public float[] Apply(float[] features, int rows)
    {
        int c = CategorisedCount;
        var categorised = Categorise(features, rows);                                        // [n, F + V]
        var columns = new List<float[]>();
        foreach (var encoding in TargetEncodings)
        {
            var category = Enumerable.Range(0, rows).Select(r => encoding.CategoryOf(categorised.AsSpan(r * c, c))).ToArray();
            columns.AddRange(encoding.Means.Select(means => category.Select(k => means[k]).ToArray()));
        }
        return Append(categorised, rows, c, columns);
    }

    /// <summary>Per expanded slot, its token: the input's tokens (<paramref name="inputTokens"/>, or one per slot), then one
    /// token per value-category group and one per target-encoded slot.</summary>
    public int[] SlotTokens(int[]? inputTokens)
    {
        var tokens = new List<int>(inputTokens ?? Enumerable.Range(0, InputCount));
        int next = tokens.Count == 0 ? 0 : tokens.Max() + 1;
        foreach (var v in ValueCategories) tokens.AddRange(Enumerable.Repeat(next++, v.Values.Length));
        for (int s = CategorisedCount; s < OutputCount; s++) tokens.Add(next++);
        return [.. tokens];
    }

    /// <summary>Whether this record expands <see cref="InputCount"/> slots to <paramref name="featureCount"/> with encodings of
    /// <paramref name="outputs"/> values each (a damaged file is refused, not mis-read).</summary>
    public bool IsValid(int featureCount, int outputs) =>
        InputCount >= 1 && ValueCategories is not null && TargetEncodings is not null
        && ValueCategories.All(v => v is not null && v.IsValid(InputCount))
        && TargetEncodings.All(t => t is not null && t.IsValid(CategorisedCount, outputs)) && OutputCount == featureCount;

    /// <summary>The target encoding's values per row for <paramref name="classes"/> (0 = regression): [outputs][N].</summary>
    public static int EncodedOutputs(int classes) => classes == 0 || classes == 2 ? 1 : classes;

    /// <summary>Rows [n, F] → [n, F + V]: each row followed by the one-hot slots of every value-category slot.</summary>
    private float[] Categorise(float[] features, int rows)
    {
        int f = InputCount, c = CategorisedCount;
        var output = new float[rows * c];
        for (int r = 0; r < rows; r++)
        {
            features.AsSpan(r * f, f).CopyTo(output.AsSpan(r * c));
            int at = r * c + f;
            foreach (var v in ValueCategories)
            {
                v.Encode(features[r * f + v.Slot], output.AsSpan(at, v.Values.Length));
                at += v.Values.Length;
            }
        }
        return output;
    }

    /// <summary>The groups to target-encode: the input's one-hot groups of two or more slots, then every value-category group.</summary>
    private static List<(int First, int Count)> Groups(float[] features, int featureCount, FeatureExpansion partial)
    {
        var groups = new List<(int First, int Count)>();
        var tokens = OneHotGroups.Find(features, featureCount);
        if (tokens is not null)
            foreach (var run in tokens.Select((t, s) => (t, s)).GroupBy(p => p.t).Where(g => g.Count() >= 2))
                groups.Add((run.First().s, run.Count()));
        int at = featureCount;
        foreach (var v in partial.ValueCategories)
        {
            groups.Add((at, v.Values.Length));
            at += v.Values.Length;
        }
        return groups;
    }

    private static float[][] Targets(float[] labels, int classes) => classes switch
    {
        0 => [labels],
        2 => [labels.Select(y => y == 1 ? 1f : 0f).ToArray()],
        _ => Enumerable.Range(0, classes).Select(k => labels.Select(y => y == k ? 1f : 0f).ToArray()).ToArray(),
    };

    /// <summary>Rows [n, c] followed by <paramref name="columns"/> [extra][n] → [n, c + extra].</summary>
    private static float[] Append(float[] rowsIn, int rows, int c, List<float[]> columns)
    {
        if (columns.Count == 0) return rowsIn;
        int width = c + columns.Count;
        var output = new float[rows * width];
        for (int r = 0; r < rows; r++)
        {
            rowsIn.AsSpan(r * c, c).CopyTo(output.AsSpan(r * width));
            for (int j = 0; j < columns.Count; j++) output[r * width + c + j] = columns[j][r];
        }
        return output;
    }
}
