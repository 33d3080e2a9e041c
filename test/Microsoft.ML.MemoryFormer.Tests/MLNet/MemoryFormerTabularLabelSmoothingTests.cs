using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerTabularLabelSmoothingTests
{
    private static MemoryFormerTabularOptions Smoothed(double smoothing, int epochs)
    {
        var options = TabularRows.TinyOptions(epochs);
        options.LabelSmoothing = smoothing;
        return options;
    }

    [Fact]
    public void Label_smoothing_makes_the_classifier_less_confident()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(256, 1));
        using var plain = ml.BinaryClassification.Trainers.MemoryFormerTabular(Smoothed(0, 15)).Fit(train);
        using var smoothed = ml.BinaryClassification.Trainers.MemoryFormerTabular(Smoothed(0.3, 15)).Fit(train);
        double Confidence(MemoryFormerTabularTransformer model) =>
            model.Transform(train).GetColumn<float>("Probability").Average(p => Math.Abs(p - 0.5));
        double plainConfidence = Confidence(plain), smoothedConfidence = Confidence(smoothed);
        // with smoothing s the optimum puts at most 1 − s/2 on a class, so |p − ½| stays under (1 − s) / 2 = 0.35
        Assert.True(smoothedConfidence < plainConfidence - 0.02, $"smoothed {smoothedConfidence:F3} vs plain {plainConfidence:F3}");
        var metrics = ml.BinaryClassification.Evaluate(smoothed.Transform(ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(200, 2))));
        Assert.True(metrics.Accuracy > 0.8, $"accuracy {metrics.Accuracy}");
    }

    [Fact]
    public void Multiclass_training_accepts_label_smoothing_and_is_deterministic()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.MulticlassRows(128, 1));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.MemoryFormerTabular(Smoothed(0.1, 2)));
        var first = pipeline.Fit(train);
        var second = pipeline.Fit(train);
        Assert.Equal(first.Transform(train).GetColumn<float[]>("Score").SelectMany(s => s).ToArray(),
            second.Transform(train).GetColumn<float[]>("Score").SelectMany(s => s).ToArray());
        (first.LastTransformer as IDisposable)?.Dispose();
        (second.LastTransformer as IDisposable)?.Dispose();
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void Label_smoothing_outside_zero_to_one_is_refused_by_name(double smoothing)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            new MLContext(1).BinaryClassification.Trainers.MemoryFormerTabular(Smoothed(smoothing, 1)));
        Assert.Equal(nameof(MemoryFormerTabularOptions.LabelSmoothing), e.ParamName);
    }

    [Fact]
    public void Regression_refuses_label_smoothing_with_the_way_out()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            new MLContext(1).Regression.Trainers.MemoryFormerTabular(Smoothed(0.1, 1)));
        Assert.Equal(nameof(MemoryFormerTabularOptions.LabelSmoothing), e.ParamName);
        Assert.Contains("set it to 0", e.Message);
    }
}
