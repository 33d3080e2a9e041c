using Microsoft.ML.MemoryFormer.Data;

namespace Microsoft.ML.MemoryFormer.Tests.Data;

public class TargetEncodingTests
{
    /// <summary>Slot 0 numeric, slots 1–3 a one-hot column (category 2 in a single row, row 0); label 1 for category 0,
    /// mostly 0 for category 1. 60 rows.</summary>
    private static (float[] Features, float[] Labels) Rows()
    {
        var features = new float[60 * 4];
        var labels = new float[60];
        for (int r = 0; r < 60; r++)
        {
            int c = r == 0 ? 2 : r % 2;
            features[r * 4] = r;
            features[r * 4 + 1 + c] = 1;
            labels[r] = c == 0 ? 1 : c == 1 ? (r % 7 == 0 ? 1 : 0) : 1;
        }
        return (features, labels);
    }

    [Fact]
    public void Every_training_row_is_encoded_with_the_statistics_of_the_other_folds_only()
    {
        var (features, labels) = Rows();
        var folds = TargetEncoding.Folds(60, 4, seed: 3);
        var (encoding, outOfFold) = TargetEncoding.FitOutOfFold(features, 4, 1, 3, [labels], folds, 4, smoothing: 5);
        for (int r = 0; r < 60; r++)
        {
            var others = Enumerable.Range(0, 60).Where(o => folds[o] != folds[r]).ToArray();
            double prior = others.Average(o => labels[o]);
            var same = others.Where(o => encoding.CategoryOf(features.AsSpan(o * 4, 4)) == encoding.CategoryOf(features.AsSpan(r * 4, 4)));
            double expected = (same.Sum(o => labels[o]) + 5 * prior) / (same.Count() + 5);
            Assert.Equal(expected, outOfFold[0][r], 5);
        }
        double all = labels.Average();
        Assert.Equal((29 + 5 * all) / (29 + 5), encoding.Means[0][0], 5);          // category 0: rows 2, 4, …, 58, all 1
        Assert.Equal(5 * all / 5, encoding.Means[0][3], 5);                        // "none": no rows, the prior
    }

    [Fact]
    public void Example_weights_count_a_row_of_weight_two_twice_and_one_of_weight_zero_not_at_all()
    {
        var (features, labels) = Rows();
        var weights = Enumerable.Range(0, 60).Select(r => r % 3 == 0 ? 2f : r % 3 == 1 ? 0f : 1f).ToArray();
        var rows = Enumerable.Range(0, 60).SelectMany(r => Enumerable.Repeat(r, (int)weights[r])).ToArray();  // weight 2 twice, 0 never
        var copies = rows.SelectMany(r => features.AsSpan(r * 4, 4).ToArray()).ToArray();
        var (weighted, outOfFold) = TargetEncoding.FitOutOfFold(features, 4, 1, 3, [labels], new int[60], 1, smoothing: 3, weights);
        var (repeated, _) = TargetEncoding.FitOutOfFold(copies, 4, 1, 3, [rows.Select(r => labels[r]).ToArray()], new int[rows.Length], 1,
            smoothing: 3);
        Assert.Equal(repeated.Means[0], weighted.Means[0], (a, b) => Math.Abs(a - b) < 1e-6);
        var (unweighted, _) = TargetEncoding.FitOutOfFold(features, 4, 1, 3, [labels], new int[60], 1, smoothing: 3);
        Assert.NotEqual(unweighted.Means[0][1], weighted.Means[0][1], 3);             // category 1's rows of label 1 weigh 2 or 0
        Assert.All(outOfFold[0], v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void A_row_alone_in_its_category_does_not_see_its_own_label()
    {
        var (features, labels) = Rows();
        var folds = TargetEncoding.Folds(60, 5, seed: 1);
        var (_, before) = TargetEncoding.FitOutOfFold(features, 4, 1, 3, [labels], folds, 5, smoothing: 2);
        labels[0] = 1 - labels[0];                                                 // row 0 is category 2's only row
        var (encoding, after) = TargetEncoding.FitOutOfFold(features, 4, 1, 3, [labels], folds, 5, smoothing: 2);
        Assert.Equal(before[0][0], after[0][0]);
        Assert.NotEqual(before[0][0], encoding.Means[0][2]);                      // the full-data encoding does see it
    }

    [Fact]
    public void Folds_are_balanced_and_repeat_for_a_seed()
    {
        var folds = TargetEncoding.Folds(61, 5, seed: 9);
        Assert.Equal(folds, TargetEncoding.Folds(61, 5, seed: 9));
        Assert.NotEqual(folds, TargetEncoding.Folds(61, 5, seed: 10));
        Assert.All(Enumerable.Range(0, 5), f => Assert.InRange(folds.Count(x => x == f), 12, 13));
    }

    [Fact]
    public void The_expansion_appends_categories_and_encodings_and_scores_with_the_full_statistics()
    {
        var features = ValueCategoriesTests.Rows(1);                               // [200, 4]; slots 1 and 2 get categories
        var labels = Enumerable.Range(0, 200).Select(r => features[r * 4 + 1] == 100 ? 1f : 0f).ToArray();
        var settings = new ExpansionSettings(true, 16, 8, TargetEncodingFolds: 4, Smoothing: 1);
        var (expansion, train) = FeatureExpansion.Fit(new TabularData(features, labels, 4, 0), settings, classes: 2, seed: 1)!.Value;
        Assert.Equal(4 + 3 + 5 + 2, expansion.OutputCount);                        // input, categories of slots 1 and 2, two encodings
        Assert.Equal([0, 1, 2, 3, 4, 4, 4, 5, 5, 5, 5, 5, 6, 7], expansion.SlotTokens(null));
        var scored = expansion.Apply(features, 200);
        Assert.Equal(train.Length, scored.Length);
        for (int r = 0; r < 200; r++)
        {
            Assert.Equal(train.AsSpan(r * 14, 12).ToArray(), scored.AsSpan(r * 14, 12).ToArray());   // same categories
            Assert.Equal(expansion.TargetEncodings[0].Means[0][expansion.TargetEncodings[0].CategoryOf(scored.AsSpan(r * 14, 14))],
                scored[r * 14 + 12]);
        }
        Assert.True(expansion.TargetEncodings[0].Means[0][1] > 0.9);               // amount 100: every row positive
        Assert.True(expansion.IsValid(14, 1));
        Assert.False(expansion.IsValid(13, 1));
        Assert.Null(FeatureExpansion.Fit(new TabularData(features, labels, 4, 0), settings with { ValueCategories = false, MaxDistinct = 2,
            TargetEncodingFolds = 0 }, 2, 1));

        var positivesOnly = labels.Select(y => y).ToArray();                      // weight 0 on every negative row
        var (weighted, _) = FeatureExpansion.Fit(new TabularData(features, labels, 4, 0, positivesOnly), settings, classes: 2, seed: 1)!.Value;
        Assert.All(weighted.TargetEncodings.SelectMany(t => t.Means[0]), mean => Assert.Equal(1f, mean, 5));   // the prior is 1 too
    }
}
