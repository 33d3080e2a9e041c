using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.LanguageModeling;
using Microsoft.ML.MemoryFormer.Tests.Training;
using Microsoft.ML.MemoryFormer.Tests.Reliability;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>A tabular model cancelled after 2 epochs and resumed matches the uninterrupted run bit for bit.</summary>
public class MemoryFormerTabularResumeTests
{
    private static MemoryFormerTabularOptions Options(string checkpoint, Action<TrainingProgress>? onEpoch = null, CancellationToken cancel = default,
        double? averaging = null)
    {
        var options = TabularRows.TinyOptions(epochs: 6);
        options.Architecture = options.Architecture with { Dropout = 0.1 };
        options.ValidationFraction = 0.25;                           // a seeded hold-out, with early stopping
        options.EarlyStoppingPatience = 2;
        options.CheckpointPath = checkpoint;
        options.CheckpointInterval = TimeSpan.FromTicks(1);          // by time: after every step
        options.CancellationToken = cancel;
        options.WeightAveragingDecay = averaging;                    // on: the average must survive the resume too
        if (onEpoch is not null) options.Progress = new SynchronousProgress(onEpoch);
        return options;
    }

    private static (TrainingResult Result, float[] Scores) Fit(MemoryFormerTabularOptions options)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(128, 3));
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(data);
        return (model.TrainingResult!, model.Transform(data).GetColumn<float>("Score").ToArray());
    }

    [Theory]
    [InlineData(null)]
    [InlineData(0.9)]
    public void A_cancelled_tabular_model_resumes_to_the_same_losses_weights_and_scores(double? averaging)
    {
        using var folder = new CheckpointFolder();
        var (expected, expectedScores) = Fit(Options(folder.File("full.ckpt"), averaging: averaging));

        using var cancel = new CancellationTokenSource();
        int cancelledAt = 0;
        Assert.ThrowsAny<OperationCanceledException>(() => Fit(Options(folder.File("run.ckpt"),
            p => { if (cancelledAt == 0 && p.Step > 1) { cancelledAt = p.Step; cancel.Cancel(); } }, cancel.Token, averaging)));
        Assert.Equal(cancelledAt, CheckpointFolder.StepOf(folder.File("run.ckpt")));
        Assert.True(cancelledAt < expected.Steps, $"cancelled at {cancelledAt} of {expected.Steps}");

        var (resumed, scores) = Fit(Options(folder.File("run.ckpt"), averaging: averaging));
        Assert.Equal(expected.LossHistory, resumed.LossHistory);
        Assert.Equal((expected.Steps, expected.StoppedEarly, expected.BestValidationLoss, expected.BestValidationMetric),
            (resumed.Steps, resumed.StoppedEarly, resumed.BestValidationLoss, resumed.BestValidationMetric));
        Assert.Equal(expectedScores, scores);
        Assert.Equal(CheckpointFolder.Tensors(folder.File("full.ckpt")), CheckpointFolder.Tensors(folder.File("run.ckpt")));
    }

    [Fact]
    public void MLNet_cancellation_stops_fit_before_the_next_step_and_checkpoints_the_last_one()
    {
        var ml = new MLContext(seed: 1);
        using var folder = new CheckpointFolder();
        int reported = 0;
        var options = Options(folder.File("run.ckpt"), p => { reported = p.Step; MLNetCancellation.Cancel(ml); });
        options.CheckpointInterval = null;                           // only the cancellation writes the checkpoint
        var data = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(128, 3));
        Assert.ThrowsAny<OperationCanceledException>(() => ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(data));
        Assert.True(reported > 0);
        Assert.Equal(reported, CheckpointFolder.StepOf(folder.File("run.ckpt")));
        Assert.Empty(folder.Others("run.ckpt"));
    }
}
