using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>Per-row explanations of a tabular MemoryFormer (<see cref="MemoryFormerTabularTransformer.Explain(IDataView, IDataView, int?, int)"/>):
/// the contributions are the occlusion they are documented as (checked against scoring the occluded rows by hand), rank
/// the features the label depends on first, treat a one-hot column as one feature named after it, and bad input is refused
/// with the column or argument named.</summary>
public class MemoryFormerTabularExplanationTests
{
    private sealed class Categorical
    {
        public float X { get; set; }
        public string Category { get; set; } = "";
        public bool Label { get; set; }
    }

    private sealed class Scored
    {
        public float Score { get; set; }
    }

    private static readonly string[] FeatureNames = TabularRows.Named.FeatureNames;

    private static IEnumerable<TabularRows.Named> Rows(int count, int seed) => TabularRows.NamedRows(count, seed);

    /// <summary>X + shift(Category) &gt; 0 with shifts a: −1, b: 0, c: +1.5.</summary>
    private static IEnumerable<Categorical> CategoricalRows(int count, int seed)
    {
        var random = new Random(seed);
        string[] categories = ["a", "b", "c"];
        float[] shift = [-1f, 0f, 1.5f];
        for (int i = 0; i < count; i++)
        {
            float x = (float)(random.NextDouble() * 4 - 2);
            int c = random.Next(3);
            yield return new Categorical { X = x, Category = categories[c], Label = x + shift[c] > 0 };
        }
    }

    [Fact]
    public void Regression_contributions_are_the_documented_occlusion_and_rank_the_features_the_label_depends_on()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Rows(400, 1));
        var featurized = ml.Transforms.Concatenate("Features", FeatureNames).Fit(data).Transform(data);
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(40)).Fit(featurized);
        const int explained = 20, background = 50;

        // A background of exactly maxBackgroundRows rows is used whole, in order (more would be sampled; see below).
        var explanations = model.Explain(ml.Data.TakeRows(featurized, explained), ml.Data.TakeRows(featurized, background), maxBackgroundRows: background);

        Assert.Equal(explained, explanations.Count);
        var scores = Scores(ml, model, featurized);
        var features = Features(ml, featurized);
        for (int r = 0; r < explained; r++)
        {
            var e = explanations[r];
            Assert.Null(e.ClassIndex);
            Assert.Null(e.ClassName);
            Assert.Equal(FeatureNames, e.Features.Select(f => f.Name));
            Assert.Equal([0, 1, 2, 3], e.Features.Select(f => f.FirstSlot));
            Assert.All(e.Features, f => Assert.Equal(1, f.SlotCount));
            Assert.Equal(features[r], e.Features.Select(f => f.Values[0]));
            Assert.Equal(scores[r], e.Prediction, 1e-4);
            Assert.Equal(scores.Take(background).Average(), e.BackgroundPrediction, 1e-4);
        }

        // Row 3's "Weak" by hand: its row with slot 1 taken from each background row, scored by Transform.
        var occluded = features.Take(background).Select(b => new VectorRow { Features = [features[3][0], b[1], features[3][2], features[3][3]] });
        double byHand = scores[3] - Scores(ml, model, ml.Data.LoadFromEnumerable(occluded)).Average();
        Assert.Equal(byHand, explanations[3].Features[1].Contribution, 1e-4);

        double Mean(string name) => explanations.Average(e => Math.Abs(e.Features.Single(f => f.Name == name).Contribution));
        Assert.True(Mean("Strong") > 2 * Mean("Weak") && Mean("Weak") > 2 * Math.Max(Mean("Noise"), Mean("Unused")),
            $"mean |contribution|: Strong {Mean("Strong"):F3}, Weak {Mean("Weak"):F3}, Noise {Mean("Noise"):F3}, Unused {Mean("Unused"):F3}");
        Assert.Equal("Strong", explanations[0].Top(1).Single().Name);

        // A larger Strong than the background's raises the prediction (the label rises with it).
        double meanStrong = features.Take(background).Average(f => f[0]);
        var clear = explanations.Where(e => Math.Abs(e.Features[0].Values[0] - meanStrong) > 0.5).ToArray();
        Assert.True(clear.Length >= 10, $"{clear.Length} rows far from the mean");
        Assert.All(clear, e => Assert.Equal(Math.Sign(e.Features[0].Values[0] - meanStrong), Math.Sign(e.Features[0].Contribution)));

        // A larger background sorted by Strong is sampled across all its rows, not read from the top.
        var sorted = ml.Data.LoadFromEnumerable(ml.Data.CreateEnumerable<VectorRow>(featurized, false).OrderBy(r => r.Features[0]).ToArray());
        double sampled = model.Explain(ml.Data.TakeRows(featurized, 1), sorted, maxBackgroundRows: background)[0].BackgroundPrediction;
        double all = scores.Average(), top = Scores(ml, model, ml.Data.TakeRows(sorted, background)).Average();
        Assert.True(Math.Abs(sampled - all) < Math.Abs(top - all) / 4, $"background mean {sampled:F2}; all rows {all:F2}, first rows {top:F2}");
    }

    [Fact]
    public void A_one_hot_column_is_one_feature_named_after_it_and_its_category_moves_the_probability_its_way()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(CategoricalRows(384, 1));
        var featurizer = ml.Transforms.Categorical.OneHotEncoding("Category")
            .Append(ml.Transforms.Concatenate("Features", "X", "Category")).Fit(data);
        var featurized = featurizer.Transform(data);
        var options = TabularRows.TinyOptions(20);
        options.GroupOneHotSlots = true;
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(featurized);
        Assert.Equal([0, 1, 1, 1], model.Info.SlotTokens!);

        var rows = CategoricalRows(384, 1).Take(40).ToArray();
        var explanations = model.Explain(ml.Data.TakeRows(featurized, rows.Length), ml.Data.TakeRows(featurized, 100), classIndex: 1);

        var probabilities = ml.Data.CreateEnumerable<BinaryScored>(model.Transform(ml.Data.TakeRows(featurized, rows.Length)), false).ToArray();
        for (int r = 0; r < rows.Length; r++)
        {
            var e = explanations[r];
            Assert.Equal(1, e.ClassIndex);
            Assert.Equal("True", e.ClassName);
            Assert.Equal(probabilities[r].Probability, e.Prediction, 1e-4);
            Assert.Equal(["X", "Category"], e.Features.Select(f => f.Name));
            Assert.Equal((1, 3), (e.Features[1].FirstSlot, e.Features[1].SlotCount));
            Assert.Equal(1f, e.Features[1].Values.Sum());
            Assert.Equal(rows[r].Category, e.Features[1].DisplayValue);
            Assert.Equal(rows[r].X.ToString("G6", System.Globalization.CultureInfo.InvariantCulture), e.Features[0].DisplayValue);
        }
        // Row 0's category by hand: all three slots taken from each of the 100 background rows, scored by Transform.
        var features = Features(ml, featurized);
        var occluded = features.Take(100).Select(b => new VectorRow { Features = [features[0][0], b[1], b[2], b[3]] });
        var occludedProbabilities = ml.Data.CreateEnumerable<BinaryScored>(model.Transform(ml.Data.LoadFromEnumerable(occluded)), false);
        Assert.Equal(probabilities[0].Probability - occludedProbabilities.Average(p => (double)p.Probability), explanations[0].Features[1].Contribution, 1e-4);

        double Category(string c) => rows.Select((row, i) => (row, i)).Where(p => p.row.Category == c)
            .Average(p => explanations[p.i].Features[1].Contribution);
        Assert.True(Category("c") > 0.05 && Category("a") < -0.05, $"mean contribution to P(true): c {Category("c"):F3}, a {Category("a"):F3}");

        // The predicted class by default, and the vector overload agrees with the data-view one.
        var predicted = model.Explain(ml.Data.TakeRows(featurized, 1), featurized)[0];
        Assert.Equal(probabilities[0].PredictedLabel ? 1 : 0, predicted.ClassIndex);
        var vector = model.Explain(features[0], ml.Data.TakeRows(featurized, 100), classIndex: 1);
        Assert.Equal(explanations[0].Features.Select(f => (f.Name, f.Contribution)), vector.Features.Select(f => (f.Name, f.Contribution)));

        // A model that reads every slot as its own token: the slot names still make the one-hot column one feature.
        using var ungrouped = ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(featurized);
        Assert.Null(ungrouped.Info.SlotTokens);
        Assert.Equal([(0, 1), (1, 3)], ungrouped.Explain(ml.Data.TakeRows(featurized, 1), featurized)[0].Features.Select(f => (f.FirstSlot, f.SlotCount)));

        // Through the whole pipeline (a chain inside a chain) on raw rows: the same explanation.
        var pipeline = new TransformerChain<ITransformer>(featurizer, model);
        var raw = ml.Model.ExplainTabular(pipeline, ml.Data.TakeRows(data, 1), ml.Data.TakeRows(data, 100), classIndex: 1)[0];
        Assert.Equal(explanations[0].Features.Select(f => (f.Name, f.Contribution)), raw.Features.Select(f => (f.Name, f.Contribution)));
        Assert.Contains("holds no MemoryFormerTabularTransformer", Assert.Throws<ArgumentException>(() =>
            ml.Model.ExplainTabular(featurizer, data, data)).Message);
    }

    [Fact]
    public void Bad_input_is_refused_naming_what_is_wrong()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.MulticlassRows(96, 1));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        using var model = ml.MulticlassClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(2)).Fit(keyed);
        var one = ml.Data.TakeRows(keyed, 1);

        var multiclass = model.Explain(one, keyed, classIndex: 2, maxBackgroundRows: 8)[0];
        Assert.Equal(2, multiclass.ClassIndex);
        Assert.Equal(model.Info.Label.ClassNames![2], multiclass.ClassName);
        Assert.Equal(["Slot 0", "Slot 1", "Slot 2", "Slot 3"], multiclass.Features.Select(f => f.Name));   // no slot names

        Assert.Contains("3 classes", Assert.Throws<ArgumentOutOfRangeException>(() => model.Explain(one, keyed, classIndex: 3)).Message);
        Assert.Contains("'Features'", Assert.Throws<ArgumentException>(() =>
            model.Explain(one, ml.Data.LoadFromEnumerable(Rows(4, 1)))).Message);
        var narrow = ml.Data.LoadFromEnumerable(new[] { new NarrowRow { Features = [1, 2, 3] } });
        Assert.Contains("3 slots", Assert.Throws<ArgumentException>(() => model.Explain(one, narrow)).Message);
        var empty = ml.Data.SkipRows(keyed, 1000);
        Assert.Contains("no rows", Assert.Throws<ArgumentException>(() => model.Explain(one, empty)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Explain(one, keyed, maxBackgroundRows: 0));
        Assert.Contains("5 values", Assert.Throws<ArgumentException>(() => model.Explain(new float[5], keyed)).Message);
        Assert.Contains("slot 1", Assert.Throws<ArgumentException>(() => model.Explain([0, float.PositiveInfinity, 0, 0], keyed)).Message);

        using var regression = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1))
            .Fit(ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 1)));
        Assert.Contains("no classes", Assert.Throws<ArgumentOutOfRangeException>(() =>
            regression.Explain(ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(1, 2)), keyed, classIndex: 0)).Message);
    }

    private sealed class VectorRow
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
    }

    private sealed class NarrowRow
    {
        [VectorType(3)] public float[] Features { get; set; } = [];
    }

    private sealed class BinaryScored
    {
        public float Probability { get; set; }
        public bool PredictedLabel { get; set; }
    }

    private static double[] Scores(MLContext ml, ITransformer model, IDataView data) =>
        [.. ml.Data.CreateEnumerable<Scored>(model.Transform(data), reuseRowObject: false).Select(s => (double)s.Score)];

    private static float[][] Features(MLContext ml, IDataView data) =>
        [.. data.GetColumn<float[]>("Features")];
}
