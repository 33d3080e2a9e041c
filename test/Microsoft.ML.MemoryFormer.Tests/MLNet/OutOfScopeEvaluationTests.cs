using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary><see cref="OutOfScopeCatalogExtensions"/>: the threshold rule, the metrics on hand-counted rows, agreement with ML.NET's
/// own multiclass evaluator on real scored output (a MemoryFormer classifier and SDCA alike), and errors that name the bad argument.</summary>
public class OutOfScopeEvaluationTests
{
    private sealed class Scored
    {
        [KeyType(3)]
        public uint Label { get; set; }

        [VectorType(3)]
        public float[] Score { get; set; } = [];

        public string Name { get; set; } = "";
    }

    /// <summary>A scored row; <paramref name="label"/> is the class index (ML.NET stores key value index + 1; 3 and above: missing, key 0).</summary>
    private static Scored Row(uint label, params float[] score) => new() { Label = label, Score = score };

    // confidences 0.9, 0.8, 0.7 (predicted class 0, label class 2: wrong), 0.6; the other three correct
    private static readonly Scored[] InScope =
        [Row(0, 0.9f, 0.05f, 0.05f), Row(1, 0.1f, 0.8f, 0.1f), Row(2, 0.7f, 0.2f, 0.1f), Row(2, 0.2f, 0.2f, 0.6f)];

    // confidences 0.75, 0.4, 0.6 (a tie with the last in-scope row)
    private static readonly Scored[] OutOfScope = [Row(0, 0.15f, 0.75f, 0.1f), Row(0, 0.4f, 0.3f, 0.3f), Row(0, 0.6f, 0.2f, 0.2f)];

    [Fact]
    public void The_metrics_are_the_hand_counted_ones()
    {
        var ml = new MLContext(1);
        var (inside, outside) = (ml.Data.LoadFromEnumerable(InScope), ml.Data.LoadFromEnumerable(OutOfScope));

        var fitted = ml.MulticlassClassification.EvaluateOutOfScope(inside, outside, inScopeRecall: 0.75);   // keeps 3 of 4: 0.7

        Assert.Equal(0.7f, fitted.Threshold);
        Assert.Equal(9.5 / 12, fitted.AreaUnderRocCurve, 12);             // 0.9 and 0.8 beat all three, 0.7 two, 0.6 one and a tie
        Assert.Equal(0.75, fitted.InScopeRecall, 12);
        Assert.Equal(0.5, fitted.InScopeAccuracy, 12);                    // accepted 0.9, 0.8 (right) and 0.7 (wrong)
        Assert.Equal(2.0 / 3, fitted.AcceptedAccuracy, 12);
        Assert.Equal(2.0 / 3, fitted.OutOfScopeRecall, 12);               // 0.4 and 0.6 fall below 0.7
        Assert.Equal((4L, 3L), (fitted.InScopeRows, fitted.OutOfScopeRows));

        var given = ml.MulticlassClassification.EvaluateOutOfScope(inside, outside, threshold: 0.6f);   // a tie is accepted
        Assert.Equal((1.0, 0.75, 1.0 / 3), (given.InScopeRecall, given.InScopeAccuracy, given.OutOfScopeRecall));
        Assert.Equal(fitted.AreaUnderRocCurve, given.AreaUnderRocCurve);
    }

    [Theory]
    [InlineData(1.0, 0.6f)]
    [InlineData(0.5, 0.8f)]
    [InlineData(0.26, 0.8f)]
    [InlineData(0.25, 0.9f)]
    public void The_threshold_is_the_largest_that_accepts_the_recall(double recall, float expected)
    {
        var ml = new MLContext(1);
        Assert.Equal(expected, ml.MulticlassClassification.FitOutOfScopeThreshold(ml.Data.LoadFromEnumerable(InScope), recall));
    }

    [Fact]
    public void A_nan_score_ranks_lowest_and_a_row_the_model_never_saw_counts_as_an_error()
    {
        var ml = new MLContext(1);
        var inside = ml.Data.LoadFromEnumerable([Row(0, 0.9f, 0.05f, 0.05f), Row(3, 0.1f, 0.8f, 0.1f), Row(1, float.NaN, float.NaN, float.NaN)]);
        Assert.Equal([1u, 0u, 2u], inside.GetColumn<uint>("Label"));       // the middle row's class is unknown to the model
        var outside = ml.Data.LoadFromEnumerable([Row(0, 0.3f, 0.3f, 0.4f)]);

        var metrics = ml.MulticlassClassification.EvaluateOutOfScope(inside, outside, threshold: 0.5f);

        Assert.Equal(2.0 / 3, metrics.InScopeRecall, 12);                 // the NaN row is rejected
        Assert.Equal(1.0 / 3, metrics.InScopeAccuracy, 12);               // key 0 is never right
        Assert.Equal(2.0 / 3, metrics.AreaUnderRocCurve, 12);             // NaN below the out-of-scope row's 0.4
        Assert.True(ml.MulticlassClassification.FitOutOfScopeThreshold(inside, 1.0) == float.NegativeInfinity);
    }

    [Fact]
    public void On_real_models_accepting_everything_gives_MLNets_accuracy()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass());
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data);
        var keyed = keys.Transform(data);
        var unrelated = keys.Transform(ml.Data.LoadFromEnumerable(
            new[] { "qq zx", "the of and", "lorem ipsum", "###" }.Select(t => new ClassificationRows.TextRow { Text = t, Label = "none" })));
        using var memoryFormer = ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options()).Fit(keyed);
        var sdca = ml.Transforms.Text.FeaturizeText("Features", "Text").Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy()).Fit(keyed);
        // PredictedLabel mapped back to text, as a pipeline's last step usually does: the evaluation reads Score and Label only.
        var readable = memoryFormer.Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(memoryFormer.Transform(keyed)));

        foreach (ITransformer model in new ITransformer[] { readable, sdca })
        {
            var scored = model.Transform(keyed);
            var all = ml.MulticlassClassification.EvaluateOutOfScope(scored, model.Transform(unrelated), threshold: float.NegativeInfinity);
            Assert.Equal(ml.MulticlassClassification.Evaluate(scored).MicroAccuracy, all.InScopeAccuracy, 12);
            Assert.Equal((1.0, 0.0), (all.InScopeRecall, all.OutOfScopeRecall));
            Assert.InRange(all.AreaUnderRocCurve, 0, 1);
            float threshold = ml.MulticlassClassification.FitOutOfScopeThreshold(scored, 0.5);
            var half = ml.MulticlassClassification.EvaluateOutOfScope(scored, model.Transform(unrelated), threshold);
            Assert.InRange(half.InScopeRecall, 0.5, 1.0);
            Assert.True(half.InScopeRecall < 1 || scored.GetColumn<float[]>("Score").All(s => s.Max() == threshold));
        }
    }

    [Fact]
    public void Bad_arguments_name_what_is_wrong()
    {
        var ml = new MLContext(1);
        var inside = ml.Data.LoadFromEnumerable(InScope);
        var outside = ml.Data.LoadFromEnumerable(OutOfScope);
        var catalog = ml.MulticlassClassification;

        var missing = Assert.Throws<ArgumentException>(() => catalog.EvaluateOutOfScope(inside, outside, scoreColumnName: "Probabilities"));
        Assert.Contains("no score column 'Probabilities'", missing.Message);
        Assert.Contains("Score", missing.Message);                        // the columns there
        var wrongType = Assert.Throws<ArgumentException>(() => catalog.FitOutOfScopeThreshold(inside, scoreColumnName: "Name"));
        Assert.Contains("not the vector of Single", wrongType.Message);
        var label = Assert.Throws<ArgumentException>(() => catalog.EvaluateOutOfScope(inside, outside, labelColumnName: "Name"));
        Assert.Contains("MapValueToKey", label.Message);
        Assert.Equal("labelColumnName", label.ParamName);
        Assert.Equal("inScopeRecall", Assert.Throws<ArgumentOutOfRangeException>(() => catalog.FitOutOfScopeThreshold(inside, 0)).ParamName);
        Assert.Equal("inScopeRecall", Assert.Throws<ArgumentOutOfRangeException>(() => catalog.EvaluateOutOfScope(inside, outside, inScopeRecall: 1.5)).ParamName);
        Assert.Throws<ArgumentException>(() => catalog.EvaluateOutOfScope(inside, outside, threshold: float.NaN));
        var empty = Assert.Throws<ArgumentException>(() => catalog.EvaluateOutOfScope(inside, ml.Data.LoadFromEnumerable(Array.Empty<Scored>())));
        Assert.Equal("outOfScope", empty.ParamName);
    }
}
