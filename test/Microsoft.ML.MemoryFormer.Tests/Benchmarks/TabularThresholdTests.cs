using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Benchmarks.Tabular;
using Microsoft.ML.MemoryFormer.Tests.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.Benchmarks;

/// <summary>The decision threshold the tabular benchmark chooses on the trainer's hold-out (linked from the benchmark program).</summary>
public class TabularThresholdTests
{
    [Fact]
    public void The_threshold_is_the_cut_of_maximum_accuracy()
    {
        float[] probabilities = [0.9f, 0.8f, 0.45f, 0.4f, 0.1f];
        bool[] labels = [true, true, true, false, false];
        float threshold = TabularThreshold.Choose(probabilities, labels);
        Assert.Equal(0.425f, threshold, 5);
        Assert.Equal(1.0, TabularThreshold.Accuracy(probabilities, labels, threshold));
        Assert.Equal(0.8, TabularThreshold.Accuracy(probabilities, labels, 0.5f), 12);
    }

    [Fact]
    public void Among_equally_accurate_cuts_the_one_nearest_one_half_wins()
    {
        // the cuts 0.85 and 0.425 each misclassify one row (every other cut two); the first found is 0.85
        float[] probabilities = [0.9f, 0.8f, 0.55f, 0.3f, 0.1f];
        bool[] labels = [true, false, true, false, false];
        Assert.Equal(0.425f, TabularThreshold.Choose(probabilities, labels), 5);
    }

    [Fact]
    public void The_rebuilt_hold_out_is_the_one_the_trainer_validated_on()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(320, 1));
        var options = TabularRows.TinyOptions(3);
        options.ValidationFraction = 0.25;
        options.EarlyStoppingPatience = 5;
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(train);
        var scored = model.Transform(train);
        var labels = scored.GetColumn<bool>("Label").ToArray();
        var probabilities = scored.GetColumn<float>("Probability").ToArray();
        var holdOut = TabularThreshold.HoldOut(labels.Length, 0.25, options.Seed!.Value);
        Assert.Equal(80, holdOut.Length);
        double accuracy = TabularThreshold.Accuracy(holdOut.Select(i => probabilities[i]), holdOut.Select(i => labels[i]), 0.5f);
        Assert.Equal(model.TrainingResult!.BestValidationMetric!.Value, accuracy, 6);
        // the log-loss is continuous, so a wrong subset cannot match it by chance
        double logLoss = holdOut.Average(i => -Math.Log(labels[i] ? probabilities[i] : 1 - probabilities[i]));
        Assert.Equal(model.TrainingResult.BestValidationLoss!.Value, logLoss, 4);
    }
}
