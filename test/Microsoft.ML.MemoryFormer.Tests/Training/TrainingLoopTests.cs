using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

public class TrainingLoopTests
{
    // a 16-token sequence the model must learn to continue: windows of it shifted by one position
    private static Tensor Windows()
    {
        long[] sequence = [3, 17, 42, 8, 8, 23, 5, 61, 12, 30, 3, 9, 44, 2, 50, 7, 19, 33, 27, 11];
        return stack(Enumerable.Range(0, 4).Select(s => tensor(sequence[s..(s + 17)])).ToArray());   // [4, 17]
    }

    private static TrainingResult Train(TransformerKind kind, int seed, int steps, IProgress<TrainingProgress>? progress = null,
        CancellationToken cancel = default, MomentPrecision moments = MomentPrecision.Float32)
    {
        random.manual_seed(seed);
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { Kind = kind });
        var windows = Windows();
        var task = new LanguageModelTask(model, windows, windows, batchSize: 4, seed, CPU);
        var options = new TrainingOptions { MaxSteps = steps, LearningRate = 1e-2, TableLearningRate = 3e-2, WarmupSteps = 5, WeightDecay = 0, TableWeightDecay = 0, ReportEvery = 10, TableMomentPrecision = moments };
        return TrainingLoop.Run(model, task, options, progress, cancellation: cancel);
    }

    [Theory]
    [InlineData(TransformerKind.MemoryFormer)]
    [InlineData(TransformerKind.Dense)]
    public void A_nano_model_memorises_a_short_sequence(TransformerKind kind)
    {
        var result = Train(kind, seed: 1, steps: 150);
        // ln(64) = 4.16 nats at the start; memorised means well under 0.3 nats per token
        Assert.True(result.LossHistory[0] > 3.5, $"initial loss {result.LossHistory[0]}");
        Assert.True(result.BestValidationLoss < 0.3, $"{kind} reached only {result.BestValidationLoss:F3} nats/token");
    }

    [Fact]
    public void With_bf16_table_moments_a_nano_MemoryFormer_memorises_as_well_and_stays_deterministic()
    {
        var a = Train(TransformerKind.MemoryFormer, seed: 1, steps: 150, moments: MomentPrecision.BFloat16);
        Assert.True(a.BestValidationLoss < 0.3, $"bf16 moments reached only {a.BestValidationLoss:F3} nats/token");
        var b = Train(TransformerKind.MemoryFormer, seed: 2, steps: 12, moments: MomentPrecision.BFloat16);
        var c = Train(TransformerKind.MemoryFormer, seed: 2, steps: 12, moments: MomentPrecision.BFloat16);
        Assert.Equal(b.LossHistory, c.LossHistory);
    }

    [Fact]
    public void The_same_seed_gives_identical_losses_and_another_seed_does_not()
    {
        var a = Train(TransformerKind.MemoryFormer, seed: 3, steps: 12);
        var b = Train(TransformerKind.MemoryFormer, seed: 3, steps: 12);
        var c = Train(TransformerKind.MemoryFormer, seed: 4, steps: 12);
        Assert.Equal(a.LossHistory, b.LossHistory);
        Assert.NotEqual(a.LossHistory, c.LossHistory);
    }

    [Fact]
    public void Progress_is_reported_and_cancellation_stops_between_steps()
    {
        using var cancel = new CancellationTokenSource();
        var reports = new List<TrainingProgress>();
        var progress = new SynchronousProgress(p => { reports.Add(p); if (p.Step >= 20) cancel.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => Train(TransformerKind.MemoryFormer, 1, 100, progress, cancel.Token));
        Assert.Equal([10, 20], reports.Select(r => r.Step));
        Assert.All(reports, r => Assert.True(r.ItemsPerSecond > 0 && r.LearningRate > 0 && r.TotalSteps == 100));
    }

    [Fact]
    public void Schedule_warms_up_linearly_then_decays_to_the_floor()
    {
        Assert.Equal(0.1, LearningRateSchedule.At(0, 1.0, 10, 100, 0.1), 12);
        Assert.Equal(1.0, LearningRateSchedule.At(9, 1.0, 10, 100, 0.1), 12);
        Assert.Equal(0.1, LearningRateSchedule.At(99, 1.0, 10, 100, 0.1), 12);
        double previous = double.MaxValue;
        for (int s = 10; s < 100; s++)
        {
            double lr = LearningRateSchedule.At(s, 1.0, 10, 100, 0.1);
            Assert.True(lr <= previous);
            previous = lr;
        }
    }

    private sealed class SynchronousProgress(Action<TrainingProgress> action) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => action(value);
    }
}
