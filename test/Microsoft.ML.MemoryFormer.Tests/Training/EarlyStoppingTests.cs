using Microsoft.ML.MemoryFormer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>Early stopping's rule: a validation that raises the metric or lowers the loss resets the patience; the
/// weights kept are those of the best metric.</summary>
public class EarlyStoppingTests
{
    private const int ValidateEvery = 2;

    // (loss, metric) of validations 1, 2, …: the metric peaks at the first while the loss keeps falling until the fourth
    private static readonly (double Loss, double? Metric)[] Script =
        [(1.0, 0.80), (0.9, 0.79), (0.8, 0.78), (0.7, 0.79), (0.75, 0.79), (0.76, 0.795), (0.9, 0.70), (0.9, 0.70)];

    [Fact]
    public void A_falling_loss_keeps_the_run_going_and_the_best_metrics_weights_are_kept()
    {
        using var model = nn.Linear(1, 1);
        var task = new ScriptedTask(model);
        var options = new TrainingOptions
        {
            MaxSteps = 100, LearningRate = 0.1, WarmupSteps = 0, WeightDecay = 0, ValidateEvery = ValidateEvery,
            EarlyStoppingPatience = 2, ReportEvery = 100, Seed = 1,
        };

        var log = new List<string>();
        var result = TrainingLoop.Run(model, task, options, log: log.Add);

        // validations 2-4 lower the loss (each resets the count), 5 and 6 improve neither: stop after the sixth. Counting
        // the metric alone would have stopped after the third.
        Assert.True(result.StoppedEarly);
        Assert.Equal(6 * ValidateEvery, result.Steps);
        Assert.Equal((1.0, 0.80), (result.BestValidationLoss!.Value, result.BestValidationMetric!.Value));
        Assert.Equal(task.WeightsAt[0], model.weight.item<float>());             // restored to the first validation's weights
        Assert.NotEqual(task.WeightsAt[0], task.WeightsAt[^1]);                   // which training had moved away from
        Assert.Contains(log, line => line.StartsWith("early stopping after step 12: 2 validations") && line.EndsWith($"(metric {0.8:F4}, loss {1.0:F4})"));
    }

    [Fact]
    public void The_lowest_loss_round_trips_through_a_checkpoint_and_older_checkpoints_take_the_best_loss()
    {
        using var state = new TrainingState { Step = 1, Best = (0.5, 0.9), LowestLoss = 0.4, SinceBest = 1 };
        state.Losses.Add(0.7);
        var bytes = Written(state);

        Assert.Equal(0.4, Read(bytes).LowestLoss);
        Assert.Equal(0.5, Read(bytes[..^9]).LowestLoss);                       // without the appended flag and value
        Assert.Throws<EndOfStreamException>(() => Read(bytes[..^5]));          // a cut value is not mistaken for an old entry
    }

    private static byte[] Written(TrainingState state)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) state.WriteTo(writer, TimeSpan.Zero);
        return stream.ToArray();
    }

    private static TrainingState Read(byte[] bytes)
    {
        using var reader = new BinaryReader(new MemoryStream(bytes));
        return TrainingState.ReadFrom(reader);
    }

    /// <summary>Pulls the weight towards a far target every step; validation plays <see cref="Script"/> and records the
    /// weight it saw.</summary>
    private sealed class ScriptedTask(TorchSharp.Modules.Linear model) : ITrainingTask
    {
        public List<float> WeightsAt { get; } = [];

        public (Tensor Loss, long Items) Loss(int step) => ((model.weight - 10).pow(2).sum(), 1);

        public (double Loss, double? Metric)? Validate()
        {
            WeightsAt.Add(model.weight.item<float>());
            return Script[WeightsAt.Count - 1];
        }
    }
}
