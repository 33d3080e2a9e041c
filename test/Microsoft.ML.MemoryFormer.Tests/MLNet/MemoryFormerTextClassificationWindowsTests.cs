using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>Whole documents (several windows per row) and temperature scaling through the ML.NET trainer.</summary>
public class MemoryFormerTextClassificationWindowsTests
{
    /// <summary>12 rows whose first 31 bytes (the first window) are the same: only the tail tells the class.</summary>
    private static ClassificationRows.BinaryRow[] TailLabelled()
    {
        string head = "this opening is shared by rows.";                         // 31 bytes
        string[] yes = ["prize", "win cash", "free prize", "cash win", "win free", "prize cash"];
        string[] no = ["lunch", "see you", "call me", "thanks", "at noon", "ok lunch"];
        return [.. yes.Select(t => new ClassificationRows.BinaryRow { Text = head + " " + t, Label = true }),
            .. no.Select(t => new ClassificationRows.BinaryRow { Text = head + " " + t, Label = false })];
    }

    private static double TrainingAccuracy(int maxWindows)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TailLabelled());
        var options = ClassificationRows.Options(epochs: 20);
        options.MaxWindowsPerRow = maxWindows;
        var scored = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(data).Transform(data);
        var labels = scored.GetColumn<bool>("Label").ToArray();
        return scored.GetColumn<bool>("PredictedLabel").Zip(labels).Count(p => p.First == p.Second) / (double)labels.Length;
    }

    [Fact]
    public void Training_reads_text_beyond_the_first_window_only_with_more_windows()
    {
        Assert.True(TrainingAccuracy(maxWindows: 1) <= 0.5, "one window sees the same text in every row");
        Assert.True(TrainingAccuracy(maxWindows: 2) >= 0.9, "the second window holds what tells the classes apart");
    }

    [Fact]
    public void The_window_bound_is_validated_and_saved_with_the_model()
    {
        var ml = new MLContext(seed: 1);
        var bad = ClassificationRows.Options();
        bad.MaxWindowsPerRow = 0;
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => ml.BinaryClassification.Trainers.MemoryFormerTextClassification(bad));
        Assert.Contains(nameof(MemoryFormerTextClassificationOptions.MaxWindowsPerRow), error.Message);

        var options = ClassificationRows.Options(epochs: 2);
        options.MaxWindowsPerRow = 3;
        var data = ml.Data.LoadFromEnumerable(TailLabelled());
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(data);
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        var loaded = (MemoryFormerTextClassificationTransformer)ml.Model.Load(stream, out _);
        Assert.Equal(3, loaded.Model.MaxWindowsPerRow);
        Assert.Equal(model.Transform(data).GetColumn<float>("Score"), loaded.Transform(data).GetColumn<float>("Score"));
    }

    [Fact]
    public void Temperature_scaling_lowers_the_validation_log_loss_and_keeps_every_prediction()
    {
        var ml = new MLContext(seed: 1);
        var rows = ClassificationRows.Multiclass();
        var train = ml.Data.LoadFromEnumerable(rows.Where((_, i) => i % 3 != 0));
        var validation = ml.Data.LoadFromEnumerable(rows.Where((_, i) => i % 3 == 0));
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(train);
        (double LogLoss, uint[] Predicted, double Temperature) Run(bool calibrate)
        {
            var options = ClassificationRows.Options(epochs: 30);
            options.ValidationSet = keys.Transform(validation);
            options.CalibrateTemperature = calibrate;
            var model = ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options).Fit(keys.Transform(train));
            var scored = model.Transform(keys.Transform(validation));
            return (ml.MulticlassClassification.Evaluate(scored).LogLoss, scored.GetColumn<uint>("PredictedLabel").ToArray(),
                model.Model.Temperature);
        }

        var plain = Run(calibrate: false);
        var calibrated = Run(calibrate: true);
        Assert.Equal(1, plain.Temperature);
        Assert.NotEqual(1, calibrated.Temperature);
        Assert.True(calibrated.LogLoss < plain.LogLoss, $"log-loss {calibrated.LogLoss} (T = {calibrated.Temperature}) vs {plain.LogLoss}");
        Assert.Equal(plain.Predicted, calibrated.Predicted);
    }
}
