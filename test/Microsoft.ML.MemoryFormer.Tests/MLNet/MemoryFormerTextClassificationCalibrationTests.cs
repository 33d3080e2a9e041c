using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>The calibration hold-out (<c>CalibrationFraction</c>, <c>CalibrationRefit</c>) and <c>LabelSmoothing</c>
/// through the ML.NET trainer.</summary>
public class MemoryFormerTextClassificationCalibrationTests
{
    private static readonly ClassificationRows.TextRow[] Rows = ClassificationRows.Multiclass();

    private static (MemoryFormerTextClassificationTransformer Model, float[][] Scores) Train(ClassificationRows.TextRow[] rows,
        Action<MemoryFormerTextClassificationOptions> set)
    {
        var ml = new MLContext(seed: 1);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Rows));
        var options = ClassificationRows.Options(epochs: 15);
        set(options);
        var model = ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options)
            .Fit(keys.Transform(ml.Data.LoadFromEnumerable(rows)));
        var scores = model.Transform(keys.Transform(ml.Data.LoadFromEnumerable(Rows))).GetColumn<float[]>("Score").ToArray();
        return (model, scores);
    }

    private static float[][] Weights(MemoryFormerTextClassificationTransformer model) =>
        model.Model.Network.parameters().Select(p => p.detach().cpu().data<float>().ToArray()).ToArray();

    [Theory]
    [InlineData(nameof(MemoryFormerTextClassificationOptions.CalibrationFraction), -0.1)]
    [InlineData(nameof(MemoryFormerTextClassificationOptions.CalibrationFraction), 0.6)]
    [InlineData(nameof(MemoryFormerTextClassificationOptions.CalibrationFraction), double.NaN)]
    [InlineData(nameof(MemoryFormerTextClassificationOptions.LabelSmoothing), -0.1)]
    [InlineData(nameof(MemoryFormerTextClassificationOptions.LabelSmoothing), 1.0)]
    [InlineData(nameof(MemoryFormerTextClassificationOptions.LabelSmoothing), double.NaN)]
    public void Bad_calibration_options_name_the_option(string option, double value)
    {
        var options = ClassificationRows.Options();
        typeof(MemoryFormerTextClassificationOptions).GetField(option)!.SetValue(options, value);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext().MulticlassClassification.Trainers.MemoryFormerTextClassification(options));
        Assert.Contains(option, error.Message);
    }

    [Fact]
    public void Calibration_rows_are_left_out_of_training_unless_refit()
    {
        var labels = Rows.Select(r => (long)Array.IndexOf(["weather", "money", "food"], r.Label)).ToArray();   // key order of first appearance
        var split = CalibrationSplit.Of(labels, classes: 3, fraction: 0.34, seed: 1)!;
        var (heldOut, _) = Train(Rows, o => { o.CalibrationFraction = 0.34; o.CalibrationRefit = false; });
        var (onKept, _) = Train(split.Kept.Select(r => Rows[r]).ToArray(), o => o.CalibrateTemperature = false);
        var (refit, refitScores) = Train(Rows, o => o.CalibrationFraction = 0.34);
        var (plain, plainScores) = Train(Rows, o => o.CalibrateTemperature = false);
        using (heldOut) using (onKept) using (refit) using (plain)
        {
            Assert.Equal(6, split.Held.Length);
            Assert.Equal(Weights(onKept), Weights(heldOut));                // trained on the kept rows only
            Assert.Equal(Weights(plain), Weights(refit));                   // trained again on every row
            Assert.NotEqual(Weights(plain), Weights(heldOut));
            Assert.Equal(heldOut.Model.Temperature, refit.Model.Temperature);     // the held-out model's temperature is kept
            Assert.NotEqual(1, refit.Model.Temperature);
            Assert.Equal(1, plain.Model.Temperature);
            Assert.Equal(plainScores.Select(ArgMax), refitScores.Select(ArgMax));
        }
    }

    [Fact]
    public void The_fitted_temperature_is_saved_and_the_run_is_deterministic()
    {
        var ml = new MLContext(seed: 1);
        var (first, scores) = Train(Rows, o => { o.CalibrationFraction = 0.34; o.LabelSmoothing = 0.1; });
        var (second, again) = Train(Rows, o => { o.CalibrationFraction = 0.34; o.LabelSmoothing = 0.1; });
        using (first) using (second)
        {
            Assert.Equal(first.Model.Temperature, second.Model.Temperature);
            Assert.Equal(scores, again);
            var data = ml.Data.LoadFromEnumerable(Rows);
            var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
            using var stream = new MemoryStream();
            ml.Model.Save(first, keyed.Schema, stream);
            stream.Position = 0;
            using var loaded = (MemoryFormerTextClassificationTransformer)ml.Model.Load(stream, out _);
            Assert.Equal(first.Model.Temperature, loaded.Model.Temperature);
            Assert.Equal(scores, loaded.Transform(keyed).GetColumn<float[]>("Score").ToArray());
        }
    }

    [Fact]
    public void The_defaults_calibrate_on_a_hold_out_but_not_on_a_handful_of_rows()
    {
        var defaults = new MemoryFormerTextClassificationOptions();
        Assert.Equal((5, 0.1, true, 0.0), (defaults.Epochs, defaults.CalibrationFraction, defaults.CalibrationRefit, defaults.LabelSmoothing));
        var (tiny, _) = Train(Rows, _ => { });                               // 10 % of 6 rows per class: 1 row, too few
        using (tiny) Assert.Equal(1, tiny.Model.Temperature);
    }

    private static int ArgMax(float[] scores) => Array.IndexOf(scores, scores.Max());
}
