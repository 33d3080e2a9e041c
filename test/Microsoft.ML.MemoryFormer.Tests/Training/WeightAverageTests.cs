using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Tests.Reliability;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>Weight averaging (<see cref="TrainingOptions.WeightAveragingDecay"/>) in the one training loop.</summary>
public class WeightAverageTests
{
    private static readonly long[] Sequence = [3, 17, 42, 8, 8, 23, 5, 61, 12, 30, 3, 9, 44, 2, 50, 7, 19, 33, 27, 11];

    // [4, 17]: windows of the sequence shifted by one position
    private static Tensor Windows() => stack(Enumerable.Range(0, 4).Select(s => tensor(Sequence[s..(s + 17)])).ToArray());

    private static TrainingOptions Options(double? decay, int steps = 6, string? checkpoint = null) => new()
    {
        MaxSteps = steps, LearningRate = 1e-2, TableLearningRate = 3e-2, WarmupSteps = 2, ReportEvery = 1, Seed = 2,
        ValidateEvery = 3, WeightAveragingDecay = decay, CheckpointPath = checkpoint, CheckpointEverySteps = checkpoint is null ? 0 : 1,
    };

    /// <summary>Trains a Nano MemoryFormer (dropout on) with <paramref name="options"/>; <paramref name="afterStep"/> sees
    /// the model after every step.</summary>
    private static (TrainingResult Result, Dictionary<string, Tensor> Final) Train(TrainingOptions options, Action<LanguageModel>? afterStep = null)
    {
        random.manual_seed(7);
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { Dropout = 0.1 });
        var windows = Windows();
        var task = new LanguageModelTask(model, windows, windows, batchSize: 4, options.Seed, CPU);
        var progress = afterStep is null ? null : new SynchronousProgress(_ => afterStep(model));
        var result = TrainingLoop.Run(model, task, options, progress);
        return (result, Weights(model));
    }

    private static Dictionary<string, Tensor> Weights(nn.Module model) =>
        model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope());

    [Fact]
    public void The_trained_model_holds_the_bias_corrected_moving_average_of_the_weights_after_each_step()
    {
        const double decay = 0.7;
        var history = new List<Dictionary<string, Tensor>>();
        var (_, final) = Train(Options(decay), model => history.Add(Weights(model)));

        Assert.Equal(6, history.Count);
        foreach (var (name, averaged) in final)
        {
            // by hand, in double: Σ dⁿ⁻ᵏ·wₖ / Σ dⁿ⁻ᵏ over the weights after steps k = 1…6
            int n = history.Count;
            var sum = zeros_like(averaged, ScalarType.Float64);
            double weights = 0;
            for (int k = 1; k <= n; k++)
            {
                double w = Math.Pow(decay, n - k);
                sum += history[k - 1][name].to(ScalarType.Float64) * w;
                weights += w;
            }
            var expected = sum / weights;
            Assert.True(averaged.to(ScalarType.Float64).allclose(expected, rtol: 1e-5, atol: 1e-6), $"{name} is not the moving average");
        }
        Assert.Contains(final, kv => !kv.Value.allclose(history[^1][kv.Key], rtol: 0, atol: 0));    // the model does not hold the last weights
    }

    [Fact]
    public void The_decay_of_each_update_gives_the_first_step_its_own_weights_and_tends_to_the_option()
    {
        Assert.Equal(0, WeightAverage.DecayAt(0.99, 1));
        Assert.Equal(0.99 * 0.01 / (1 - 0.99 * 0.99), WeightAverage.DecayAt(0.99, 2), 15);
        Assert.Equal(0.99, WeightAverage.DecayAt(0.99, 100_000), 12);
        Assert.Equal(0, WeightAverage.DecayAt(0, 5));
    }

    [Fact]
    public void Averaging_changes_neither_the_training_trajectory_nor_the_trained_weights_only_what_is_kept()
    {
        using var folder = new CheckpointFolder();
        var (off, offFinal) = Train(Options(null, checkpoint: folder.File("off.ckpt")));
        var (on, onFinal) = Train(Options(0.9, checkpoint: folder.File("on.ckpt")));

        Assert.Equal(off.LossHistory, on.LossHistory);                          // the same steps, bit for bit
        Assert.Equal(Entry(folder.File("off.ckpt"), "weights.bin"), Entry(folder.File("on.ckpt"), "weights.bin"));
        Assert.Equal(Entry(folder.File("off.ckpt"), "optimizer.bin"), Entry(folder.File("on.ckpt"), "optimizer.bin"));
        Assert.False(Has(folder.File("off.ckpt"), "weight-average.bin"));
        Assert.True(Has(folder.File("on.ckpt"), "weight-average.bin"));
        Assert.NotEqual(off.BestValidationLoss, on.BestValidationLoss);         // validation scored the average
        Assert.Contains(onFinal, kv => !kv.Value.allclose(offFinal[kv.Key], rtol: 0, atol: 0));
    }

    [Fact]
    public void A_run_with_averaging_resumed_from_each_of_its_checkpoints_ends_bit_identical_to_the_straight_run()
    {
        using var folder = new CheckpointFolder();
        var (straight, straightFinal) = Train(Options(0.8, steps: 7, checkpoint: folder.File("straight.ckpt")));
        foreach (int stop in new[] { 2, 4 })
        {
            string path = folder.File($"stop{stop}.ckpt");
            Train(Options(0.8, steps: 7, checkpoint: path), stopAfter: stop);
            Assert.Equal(stop, CheckpointFolder.StepOf(path));
            var (resumed, resumedFinal) = Train(Options(0.8, steps: 7, checkpoint: path));
            Assert.Equal(straight.LossHistory, resumed.LossHistory);
            Assert.Equal(straight.BestValidationLoss, resumed.BestValidationLoss);
            Assert.Equal(CheckpointFolder.Tensors(folder.File("straight.ckpt")), CheckpointFolder.Tensors(path));
            Assert.All(straightFinal, kv => Assert.True(kv.Value.allclose(resumedFinal[kv.Key], rtol: 0, atol: 0), kv.Key));
        }
    }

    /// <summary>Trains until <paramref name="stopAfter"/> steps are done, then cancels (the loop checkpoints that step).</summary>
    private static void Train(TrainingOptions options, int stopAfter)
    {
        using var cancel = new CancellationTokenSource();
        random.manual_seed(7);
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { Dropout = 0.1 });
        var windows = Windows();
        var task = new LanguageModelTask(model, windows, windows, batchSize: 4, options.Seed, CPU);
        var progress = new SynchronousProgress(p => { if (p.Step == stopAfter) cancel.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => TrainingLoop.Run(model, task, options, progress, cancellation: cancel.Token));
    }

    [Fact]
    public void A_checkpoint_without_averaging_is_another_run_and_the_option_is_left_out_of_the_identity_when_off()
    {
        Assert.DoesNotContain(nameof(TrainingOptions.WeightAveragingDecay), System.Text.Json.JsonSerializer.Serialize(new TrainingOptions()));
        using var folder = new CheckpointFolder();
        string path = folder.File("run.ckpt");
        Train(Options(null, steps: 3, checkpoint: path));
        var e = Assert.Throws<InvalidOperationException>(() => Train(Options(0.9, steps: 3, checkpoint: path)));
        Assert.Contains("WeightAveragingDecay", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(1.5)]
    [InlineData(-0.1)]
    [InlineData(double.NaN)]
    public void A_decay_outside_zero_to_one_is_refused_naming_the_option(double decay)
    {
        var loop = Assert.Throws<ArgumentOutOfRangeException>(() => new TrainingOptions { WeightAveragingDecay = decay }.Validate());
        Assert.Equal(nameof(TrainingOptions.WeightAveragingDecay), loop.ParamName);
        Assert.Contains("TrainingOptions.WeightAveragingDecay must be null (off, the default) or in [0, 1)", loop.Message, StringComparison.Ordinal);

        var tabular = Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryFormerTabularOptions { WeightAveragingDecay = decay }.Validate());
        Assert.Contains("MemoryFormerTabularOptions.WeightAveragingDecay must be null", tabular.Message, StringComparison.Ordinal);
        var text = Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryFormerTextClassificationOptions { WeightAveragingDecay = decay }.Validate());
        Assert.Contains("MemoryFormerTextClassificationOptions.WeightAveragingDecay must be null", text.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_trainer_options_map_the_decay_onto_the_training_loop()
    {
        var mapped = new MemoryFormerTabularOptions { WeightAveragingDecay = 0.99 }.ToTrainingOptions(seed: 1, stepsPerEpoch: 4, validated: true);
        Assert.Equal(0.99, mapped.WeightAveragingDecay);
        Assert.Null(new MemoryFormerTextClassificationOptions().ToTrainingOptions(seed: 1, stepsPerEpoch: 4, validated: false).WeightAveragingDecay);
    }

    private static byte[] Entry(string checkpoint, string entry)
    {
        using var archive = ModelArchive.Load(checkpoint);
        return archive.Get(entry);
    }

    private static bool Has(string checkpoint, string entry)
    {
        using var archive = ModelArchive.Load(checkpoint);
        return archive.Contains(entry);
    }

    private sealed class SynchronousProgress(Action<TrainingProgress> action) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => action(value);
    }
}
