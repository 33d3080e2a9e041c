using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary><see cref="MemoryFormerTextClassificationOptions.OutlierSet"/> (outlier exposure): the loss it adds, what training
/// with it does to the confidence on text of no class, and the errors for a bad set or weight.</summary>
public class MemoryFormerTextClassificationOutlierTests
{
    private static readonly string[] Outliers = ["the old ship sailed north", "xq zzv kkp", "a history of the river", "seven dry leaves"];

    [Fact]
    public void The_loss_adds_the_outliers_cross_entropy_to_the_uniform_distribution()
    {
        using var scope = NewDisposeScope();
        var outputs = tensor(new float[] { 2, 0, -1, 0.5f, 0.5f, 3, -2, 1, 0, 1, 1, 1 }, [4, 3]);
        var targets = tensor(new long[] { 0, -1, 2, -1 });
        var logp = nn.functional.log_softmax(outputs, 1);
        double classes = -(logp[0, 0].item<float>() + logp[2, 2].item<float>()) / 2;
        double uniform = -(logp[1].mean().item<float>() + logp[3].mean().item<float>()) / 2;

        Assert.Equal(classes + (0.25 * uniform), new ClassificationObjective(outlierWeight: 0.25).Loss(outputs, targets).item<float>(), 5);
        var weights = tensor(new float[] { 1, 3, 1, 1 });                  // the first outlier counts three times
        double weighted = -((3 * logp[1].mean().item<float>()) + logp[3].mean().item<float>()) / 4;
        Assert.Equal(classes + weighted, new ClassificationObjective(outlierWeight: 1).Loss(outputs, targets, weights).item<float>(), 5);
        var labelled = tensor(new long[] { 0, 1, 2, 1 });                  // no outlier: the plain cross-entropy, as before
        Assert.Equal(nn.functional.cross_entropy(outputs, labelled).item<float>(), new ClassificationObjective().Loss(outputs, labelled).item<float>());
    }

    private static (float[] OutlierConfidence, double Accuracy) Fit(bool withOutliers)
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass());
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        var options = ClassificationRows.Options();
        if (withOutliers)
            options.OutlierSet = ml.Data.LoadFromEnumerable(Outliers.Select(t => new ClassificationRows.TextRow { Text = t }));
        using var model = ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options).Fit(keyed);
        var outliers = ml.Data.LoadFromEnumerable(Outliers.Select(t => new ClassificationRows.TextRow { Text = t }));
        return (model.Transform(outliers).GetColumn<float[]>("Score").Select(s => s.Max()).ToArray(),
            ml.MulticlassClassification.Evaluate(model.Transform(keyed)).MicroAccuracy);
    }

    [Fact]
    public void Training_with_outliers_lowers_the_confidence_on_them_and_keeps_the_classes()
    {
        var plain = Fit(withOutliers: false);
        var exposed = Fit(withOutliers: true);

        Assert.Equal(1.0, exposed.Accuracy);                               // the labelled rows are still learnt
        Assert.True(exposed.OutlierConfidence.Average() < plain.OutlierConfidence.Average() - 0.1,
            $"outliers' mean confidence {exposed.OutlierConfidence.Average():F3} with exposure, {plain.OutlierConfidence.Average():F3} without");
        Assert.All(exposed.OutlierConfidence, c => Assert.InRange(c, 1 / 3f, 0.5f));   // near the uniform 1/3
        Assert.Equal(exposed.OutlierConfidence, Fit(withOutliers: true).OutlierConfidence);   // seeded: the same again
    }

    [Fact]
    public void A_bad_outlier_set_or_weight_is_named()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass());
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        var options = ClassificationRows.Options(epochs: 1);
        options.OutlierSet = ml.Data.LoadFromEnumerable(new[] { new { Sentence = "no text column here" } }.Select(r => new Untitled { Sentence = r.Sentence }));
        var e = Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options).Fit(keyed));
        Assert.Equal("OutlierSet", e.ParamName);
        Assert.Contains("'Text'", e.Message);

        var weight = ClassificationRows.Options(epochs: 1);
        weight.OutlierLossWeight = -1;
        var w = Assert.ThrowsAny<ArgumentException>(() => ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(weight));
        Assert.Contains("OutlierLossWeight", w.Message);
    }

    private sealed class Untitled
    {
        public string Sentence { get; set; } = "";
    }
}
