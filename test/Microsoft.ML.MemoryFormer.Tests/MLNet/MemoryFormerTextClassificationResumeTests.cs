using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.LanguageModeling;
using Microsoft.ML.MemoryFormer.Tests.Training;
using Microsoft.ML.MemoryFormer.Tests.Reliability;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>A text classifier cancelled after 3 epochs and resumed matches the uninterrupted run bit for bit.</summary>
public class MemoryFormerTextClassificationResumeTests
{
    private static MemoryFormerTextClassificationOptions Options(MLContext ml, string checkpoint, Action<TrainingProgress>? onEpoch = null,
        CancellationToken cancel = default, double? averaging = null)
    {
        var options = ClassificationRows.Options(epochs: 8);
        options.BatchSize = 4;                         // 3 steps per epoch
        options.Dropout = 0.1;                         // the resumed run must replay the dropout masks
        options.ValidationSet = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        options.EarlyStoppingPatience = 3;             // best weights and patience must survive the resume
        options.CheckpointPath = checkpoint;
        options.CheckpointEverySteps = 4;
        options.CancellationToken = cancel;
        options.WeightAveragingDecay = averaging;      // on: the average must survive the resume too
        if (onEpoch is not null) options.Progress = new SynchronousProgress(onEpoch);
        return options;
    }

    private static (TrainingResult Result, float[] Scores) Fit(MemoryFormerTextClassificationOptions? options = null, string? checkpoint = null,
        Action<TrainingProgress>? onEpoch = null, CancellationToken cancel = default, double? averaging = null)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options ?? Options(ml, checkpoint!, onEpoch, cancel, averaging)).Fit(data);
        return (model.TrainingResult!, model.Transform(data).GetColumn<float>("Score").ToArray());
    }

    [Theory]
    [InlineData(null)]
    [InlineData(0.9)]
    public void A_cancelled_classifier_resumes_to_the_same_losses_weights_and_scores(double? averaging)
    {
        using var folder = new CheckpointFolder();
        var (expected, expectedScores) = Fit(checkpoint: folder.File("full.ckpt"), averaging: averaging);

        using var cancel = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => Fit(checkpoint: folder.File("run.ckpt"),
            onEpoch: p => { if (p.Step == 9) cancel.Cancel(); }, cancel: cancel.Token, averaging: averaging));
        Assert.Equal(9, CheckpointFolder.StepOf(folder.File("run.ckpt")));

        var (resumed, scores) = Fit(checkpoint: folder.File("run.ckpt"), averaging: averaging);
        Assert.Equal(expected.LossHistory, resumed.LossHistory);
        Assert.Equal((expected.Steps, expected.StoppedEarly, expected.BestValidationLoss, expected.BestValidationMetric),
            (resumed.Steps, resumed.StoppedEarly, resumed.BestValidationLoss, resumed.BestValidationMetric));
        Assert.Equal(expectedScores, scores);
        Assert.Equal(CheckpointFolder.Tensors(folder.File("full.ckpt")), CheckpointFolder.Tensors(folder.File("run.ckpt")));
        Assert.Empty(folder.Others("full.ckpt", "run.ckpt"));
    }

    [Fact]
    public void A_classifier_cancelled_in_its_calibration_run_resumes_there_to_the_same_scores()
    {
        // No validation set: the temperature is fitted on a held-out half by a first run, then the model trains again on every
        // row. A cancel inside the first run leaves that run's own checkpoint, and the resumed Fit ends where an
        // uninterrupted one does.
        MemoryFormerTextClassificationOptions Calibrated(string checkpoint, Action<TrainingProgress>? onStep = null, CancellationToken cancel = default)
        {
            var options = ClassificationRows.Options(epochs: 4);
            options.BatchSize = 2;
            options.CalibrationFraction = 0.5;          // 3 of each class's 6 rows: enough for a temperature
            options.CheckpointPath = checkpoint;
            options.CheckpointEverySteps = 2;
            options.CancellationToken = cancel;
            if (onStep is not null) options.Progress = new SynchronousProgress(onStep);
            return options;
        }
        using var folder = new CheckpointFolder();
        var (_, expectedScores) = Fit(Calibrated(folder.File("full.ckpt")));
        Assert.True(File.Exists(folder.File("full.ckpt.calibration")));

        using var cancel = new CancellationTokenSource();
        int cancelledAt = 0;                                              // the first report (an epoch of the first run)
        Assert.ThrowsAny<OperationCanceledException>(() => Fit(Calibrated(folder.File("run.ckpt"),
            p => { if (cancelledAt == 0) { cancelledAt = p.Step; cancel.Cancel(); } }, cancel.Token)));
        Assert.InRange(cancelledAt, 1, 11);
        Assert.Equal(cancelledAt, CheckpointFolder.StepOf(folder.File("run.ckpt.calibration")));
        Assert.False(File.Exists(folder.File("run.ckpt")));              // the second run never started

        var reports = new List<TrainingProgress>();
        var (_, scores) = Fit(Calibrated(folder.File("run.ckpt"), reports.Add));
        Assert.Equal(expectedScores, scores);

        // Progress says which of the two runs a report belongs to, the step count restarting with the second.
        Assert.All(reports, r => Assert.Equal(2, r.Runs));
        Assert.Equal([1, 2], reports.Select(r => r.Run).Distinct());
        Assert.True(reports.Last(r => r.Run == 1).TotalSteps < reports.Last().TotalSteps);
    }
}
