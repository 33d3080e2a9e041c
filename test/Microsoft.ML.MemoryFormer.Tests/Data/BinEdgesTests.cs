using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;

namespace Microsoft.ML.MemoryFormer.Tests.Data;

public class BinEdgesTests
{
    /// <summary>Slot 0 uniform on [−2, 2] with the label a step at 0.5, slot 1 a 0/1 one-hot slot, slot 2 constant.</summary>
    private static (float[] Features, float[] Labels) StepRows(int rows, int seed)
    {
        var random = new Random(seed);
        var features = new float[rows * 3];
        var labels = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            float x = (float)(random.NextDouble() * 4 - 2);
            features[r * 3] = x;
            features[r * 3 + 1] = random.Next(2);
            features[r * 3 + 2] = 7;
            labels[r] = x > 0.5f ? 1 : 0;
        }
        return (features, labels);
    }

    [Theory]
    [InlineData(TabularBinning.Quantile)]
    [InlineData(TabularBinning.Tree)]
    public void Edges_are_strictly_increasing_span_the_values_and_ignore_row_order(TabularBinning binning)
    {
        var (features, labels) = StepRows(400, 1);
        var edges = BinEdges.Fit(features, 3, bins: 8, binning, labels, classes: 2);
        Assert.Equal(3, edges.Length);
        foreach (var slot in edges)
        {
            Assert.InRange(slot.Length, 2, 9);
            Assert.All(slot.Zip(slot.Skip(1)), p => Assert.True(p.First < p.Second, $"{p.First} !< {p.Second}"));
        }
        var xs = Enumerable.Range(0, 400).Select(r => features[r * 3]).ToArray();
        Assert.Equal(xs.Min(), edges[0][0]);
        Assert.Equal(xs.Max(), edges[0][^1]);
        Assert.Equal([0f, 1f], edges[1]);                 // one-hot slot: a single bin, the linear token again
        Assert.Equal([7f, 8f], edges[2]);                 // constant slot: one unit bin

        var reversed = Enumerable.Range(0, 400).Reverse().ToArray();
        var shuffledFeatures = reversed.SelectMany(r => features.AsSpan(r * 3, 3).ToArray()).ToArray();
        var again = BinEdges.Fit(shuffledFeatures, 3, bins: 8, binning, reversed.Select(r => labels[r]).ToArray(), classes: 2);
        Assert.Equal(edges, again);
    }

    [Fact]
    public void Tree_edges_find_the_label_step_and_stop_when_splits_gain_nothing()
    {
        var (features, labels) = StepRows(400, 2);
        var edges = BinEdges.Fit(features, 3, bins: 8, TabularBinning.Tree, labels, classes: 2);
        Assert.Equal(3, edges[0].Length);                 // min, the step, max: a pure split leaves nothing to gain
        Assert.InRange(edges[0][1], 0.45f, 0.55f);
        var regression = BinEdges.Fit(features, 3, bins: 8, TabularBinning.Tree, labels.Select(l => 10 * l - 3).ToArray(), classes: 0);
        Assert.Equal(edges[0], regression[0]);            // variance reduction finds the same split as Gini
    }

    [Fact]
    public void Tree_edges_separate_every_class_of_a_multiclass_label_and_then_stop()
    {
        // one slot, values 0..299 (row order reversed); the class is value / 100: two thresholds make every leaf pure
        var features = Enumerable.Range(0, 300).Select(r => (float)(299 - r)).ToArray();
        var labels = features.Select(v => (float)(int)(v / 100)).ToArray();
        var edges = BinEdges.Fit(features, 1, bins: 16, TabularBinning.Tree, labels, classes: 3)[0];
        Assert.Equal([0f, 99.5f, 199.5f, 299f], edges);
    }

    [Fact]
    public void Tree_edges_weigh_rows_by_their_example_weights()
    {
        // the multiclass slot above: with weight 0 on class 2's rows, separating it gains nothing
        var features = Enumerable.Range(0, 300).Select(r => (float)(299 - r)).ToArray();
        var labels = features.Select(v => (float)(int)(v / 100)).ToArray();
        var noClassTwo = labels.Select(l => l == 2 ? 0f : 1f).ToArray();
        Assert.Equal([0f, 99.5f, 299f], BinEdges.Fit(features, 1, bins: 16, TabularBinning.Tree, labels, classes: 3, weights: noClassTwo)[0]);

        // a weight of 2 splits as a repeated row does, for Gini and for squared error
        var random = new Random(4);
        var values = Enumerable.Range(0, 200).Select(_ => (float)random.Next(60)).ToArray();
        var targets = values.Select(v => (float)(Math.Sin(v / 7) + random.NextDouble())).ToArray();
        var weights = values.Select(_ => random.Next(2) + 1f).ToArray();
        var repeated = Enumerable.Range(0, 200).SelectMany(r => Enumerable.Repeat(r, (int)weights[r])).ToArray();
        foreach (int classes in new[] { 0, 2 })
        {
            var y = classes == 0 ? targets : targets.Select(t => t > 0.8 ? 1f : 0f).ToArray();
            var weighted = BinEdges.Fit(values, 1, bins: 6, TabularBinning.Tree, y, classes, minLeafRows: 1, weights: weights)[0];
            var copies = BinEdges.Fit(repeated.Select(r => values[r]).ToArray(), 1, bins: 6, TabularBinning.Tree,
                repeated.Select(r => y[r]).ToArray(), classes, minLeafRows: 1)[0];
            Assert.Equal(copies, weighted);
            Assert.NotEqual(BinEdges.Fit(values, 1, bins: 6, TabularBinning.Tree, y, classes, minLeafRows: 1)[0], weighted);
        }
    }

    [Fact]
    public void A_smaller_minimum_leaf_isolates_a_rare_value_that_carries_the_label()
    {
        // one slot, values 0..99, 10 rows each; only the value 50 is positive: isolating it takes a 10-row bin
        var features = Enumerable.Range(0, 1000).Select(r => (float)(r / 10)).ToArray();
        var labels = features.Select(v => v == 50 ? 1f : 0f).ToArray();
        Assert.True(BinEdges.MinLeaf(1000, 16) > 10);     // the default rule: 15 rows at 16 bins
        var byDefault = BinEdges.Fit(features, 1, bins: 16, TabularBinning.Tree, labels, classes: 2)[0];
        var fine = BinEdges.Fit(features, 1, bins: 16, TabularBinning.Tree, labels, classes: 2, minLeafRows: 5)[0];
        Assert.False(byDefault.Contains(49.5f) && byDefault.Contains(50.5f), string.Join(", ", byDefault));
        Assert.Contains(49.5f, fine);
        Assert.Contains(50.5f, fine);
        Assert.Equal(2, fine.Count(e => e > 0 && e < 99));   // 49.5, 50.5 and nothing else: the other splits gain nothing
        Assert.Throws<ArgumentOutOfRangeException>(() => BinEdges.Fit(features, 1, 16, TabularBinning.Tree, labels, 2, minLeafRows: 0));
    }

    [Fact]
    public void Quantile_edges_are_the_order_statistics()
    {
        var features = Enumerable.Range(0, 9).Select(i => (float)i).ToArray();  // one slot, values 0..8
        var edges = BinEdges.Fit(features, 1, bins: 4, TabularBinning.Quantile, new float[9], classes: 0);
        Assert.Equal([0f, 2f, 4f, 6f, 8f], edges[0]);
        Assert.Equal([0f, 8f], BinEdges.Fit(features, 1, bins: 1, TabularBinning.Quantile, new float[9], classes: 0)[0]);
    }

    [Fact]
    public void Missing_values_are_ignored_and_an_all_missing_slot_gets_a_unit_bin()
    {
        var features = new[] { 1f, float.NaN, float.NaN, float.NaN, 3f, float.NaN };  // [3, 2]
        var edges = BinEdges.Fit(features, 2, bins: 4, TabularBinning.Quantile, new float[3], classes: 0);
        Assert.Equal([1f, 3f], edges[0]);
        Assert.Equal([0f, 1f], edges[1]);
    }
}
