using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Tests.Reliability;
using Microsoft.ML.MemoryFormer.Training;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>
/// <see cref="TrainingOptions.TableGradientClipping"/> and the table update fused into the blocked backward
/// (<see cref="TableUpdate"/>, <see cref="KernelSettings.FusedTableUpdate"/>): the fused step gives the bits of the
/// unfused one, without clipping every rule equals the global one, and a resumed run repeats the straight one.
/// </summary>
public class TableGradientClippingTests
{
    /// <summary>Trains a small model (d = 64, τ = 8: large enough batches take the blocked backward); returns every parameter's bytes.</summary>
    private static (byte[][] Parameters, IReadOnlyList<double> Losses) Train(TableGradientClipping clipping, double clip, bool fused, bool blocked = true,
        MomentPrecision moments = MomentPrecision.Float32)
    {
        byte[][] parameters = [];
        IReadOnlyList<double> losses = [];
        // One backward kernel for every rule compared, so that only the clipping and the fusion differ (the row pass and
        // the blocks round the weight gradient differently).
        KernelSettings.Current.With(k => { k.FusedTableUpdate = fused; k.BlockedTableGradient = blocked; }, () =>
        {
            random.manual_seed(9);
            var config = MemoryFormerConfig.Nano with { Width = 64, Heads = 2, BitsPerChunk = 8, Layers = 1, ContextLength = 32 };
            using var model = new LanguageModel(config);
            var windows = randint(0, 64, [16, 33], dtype: ScalarType.Int64, generator: new TorchSharp.torch.Generator(3));
            var task = new LanguageModelTask(model, windows, windows, batchSize: 16, seed: 9, CPU);
            var options = new TrainingOptions
            {
                MaxSteps = 5, WarmupSteps = 1, GradientClip = clip, ReportEvery = 1, TableGradientClipping = clipping, TableMomentPrecision = moments,
            };
            var result = TrainingLoop.Run(model, task, options);
            parameters = model.parameters().Select(p => p.bytes.ToArray()).ToArray();
            losses = result.LossHistory;
        });
        return (parameters, losses);
    }

    private static void AssertSameBytes((byte[][] Parameters, IReadOnlyList<double> Losses) a, (byte[][] Parameters, IReadOnlyList<double> Losses) b)
    {
        Assert.Equal(a.Losses, b.Losses);
        Assert.Equal(a.Parameters.Length, b.Parameters.Length);
        for (int i = 0; i < a.Parameters.Length; i++)
            Assert.True(a.Parameters[i].AsSpan().SequenceEqual(b.Parameters[i]), $"parameter {i} differs");
    }

    [Theory]
    [InlineData(TableGradientClipping.PreviousStep, false)]   // fused into the row pass
    [InlineData(TableGradientClipping.PreviousStep, true)]    // fused into the blocks
    [InlineData(TableGradientClipping.None, false)]
    public void The_update_fused_into_the_backward_gives_the_bits_of_the_separate_step(TableGradientClipping clipping, bool blocked)
    {
        // A tiny clip norm scales every step's gradients, so the previous step's factor matters from step 2 on.
        var separate = Train(clipping, clip: 1e-3, fused: false, blocked);
        var fused = Train(clipping, clip: 1e-3, fused: true, blocked);
        AssertSameBytes(separate, fused);
    }

    [Theory]
    [InlineData(TableGradientClipping.PreviousStep, false)]   // bf16 moments: only the row pass fuses them
    [InlineData(TableGradientClipping.PreviousStep, true)]    // blocks on: a bf16 step still fuses, into the row pass
    [InlineData(TableGradientClipping.None, false)]
    public void The_update_with_bf16_moments_fused_into_the_row_pass_gives_the_bits_of_the_separate_step(TableGradientClipping clipping, bool blocked)
    {
        // The separate bf16 step writes the gradient with the same kernel as the fused one (the row pass) only when the
        // blocks are off, so with blocks on the separate run is the row pass too; both differ from fp32 moments.
        var separate = Train(clipping, clip: 1e-3, fused: false, blocked: false, MomentPrecision.BFloat16);
        var fused = Train(clipping, clip: 1e-3, fused: true, blocked, MomentPrecision.BFloat16);
        AssertSameBytes(separate, fused);
        var fp32 = Train(clipping, clip: 1e-3, fused: true, blocked: false);
        Assert.False(fp32.Parameters.Zip(fused.Parameters).All(p => p.First.AsSpan().SequenceEqual(p.Second)), "bf16 moments changed nothing");
    }

    [Theory]
    [InlineData(false, MomentPrecision.Float32)]
    [InlineData(true, MomentPrecision.Float32)]
    [InlineData(false, MomentPrecision.BFloat16)]
    public void The_backward_updates_every_table_in_place_and_leaves_no_table_gradient(bool blocked, MomentPrecision moments) =>
        KernelSettings.Current.With(k => k.BlockedTableGradient = blocked, () => UpdatesInPlace(moments));

    private static void UpdatesInPlace(MomentPrecision moments)
    {
        random.manual_seed(9);
        var config = MemoryFormerConfig.Nano with { Width = 64, Heads = 2, BitsPerChunk = 8, Layers = 1, ContextLength = 32 };
        using var model = new LanguageModel(config);
        var windows = randint(0, 64, [16, 33], dtype: ScalarType.Int64, generator: new TorchSharp.torch.Generator(3));
        var task = new LanguageModelTask(model, windows, windows, batchSize: 16, seed: 9, CPU);
        using var optimizer = new ModelOptimizer(model, new TrainingOptions
        {
            MaxSteps = 2, TableGradientClipping = TableGradientClipping.PreviousStep, TableMomentPrecision = moments,
        });
        var layers = ParameterGroups.TableLayers(model);
        var before = layers.Select(l => l.Table.detach().clone()).ToArray();
        model.train();

        optimizer.ZeroGrad(0);
        task.Loss(0).Loss.backward();

        Assert.NotEmpty(layers);
        for (int i = 0; i < layers.Count; i++)
        {
            Assert.True(layers[i].Gradient.Update is { Applied: true }, $"table {i} was not updated in the backward");
            Assert.Null(layers[i].Table.grad);
            Assert.False(layers[i].Table.detach().eq(before[i]).all().item<bool>(), $"table {i} did not move");
        }
        optimizer.Step(0);
        Assert.All(layers, l => Assert.Null(l.Gradient.Update));
    }

    [Fact]
    public void Without_clipping_every_rule_trains_exactly_like_the_global_one()
    {
        var global = Train(TableGradientClipping.Global, clip: 1e6, fused: true);
        AssertSameBytes(global, Train(TableGradientClipping.PreviousStep, clip: 1e6, fused: true));
        AssertSameBytes(Train(TableGradientClipping.Global, clip: 0, fused: true), Train(TableGradientClipping.None, clip: 0, fused: true));
    }

    [Fact]
    public void The_previous_step_rule_clips_the_tables_differently_from_the_global_one()
    {
        var global = Train(TableGradientClipping.Global, clip: 1e-3, fused: true);
        var previous = Train(TableGradientClipping.PreviousStep, clip: 1e-3, fused: true);
        Assert.Equal(global.Losses[0], previous.Losses[0]);                  // the same first forward
        Assert.NotEqual(global.Losses[^1], previous.Losses[^1]);             // step 1's tables moved unclipped (factor 1)
    }

    [Fact]
    public void The_ML_NET_options_pass_the_rule_to_the_training_loop()
    {
        var options = new MemoryFormerLanguageModelEstimator.Options { TableGradientClipping = TableGradientClipping.None };
        Assert.Equal(TableGradientClipping.None, options.ToTrainingOptions(seed: 1, stepsPerEpoch: 10, validated: false).TableGradientClipping);
        var unset = new MemoryFormerLanguageModelEstimator.Options().ToTrainingOptions(1, 10, false);
        Assert.Null(unset.TableGradientClipping);                            // left for the loop to resolve (a checkpoint's rule)
        Assert.Equal(TableGradientClipping.PreviousStep, unset.TableClippingRule);
    }

    [Fact]
    public void An_unknown_rule_is_refused_with_its_name()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new TrainingOptions { TableGradientClipping = (TableGradientClipping)7 }.Validate());
        Assert.Contains(nameof(TrainingOptions.TableGradientClipping), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_run_resumed_from_a_checkpoint_keeps_the_previous_factor_and_repeats_the_straight_run()
    {
        using var folder = new CheckpointFolder();
        MemoryFormerLanguageModelEstimator.Options Options(string path, int steps)
        {
            var o = NanoOptions(steps: steps);
            o.Seed = 5;
            o.ReportEvery = 1;
            o.ValidationFraction = 0;
            o.ValidateEvery = 0;
            o.CheckpointPath = path;
            o.TableGradientClipping = TableGradientClipping.PreviousStep;
            return o;
        }
        TrainingResult Fit(MemoryFormerLanguageModelEstimator.Options options)
        {
            var ml = new MLContext(seed: 1);
            using var model = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus));
            return model.TrainingResult!;
        }

        var straight = Fit(Options(folder.File("straight.ckpt"), 8));
        using var cancel = new CancellationTokenSource();
        var first = Options(folder.File("run.ckpt"), 8);
        first.Progress = new SynchronousProgress(p => { if (p.Step == 4) cancel.Cancel(); });
        first.CancellationToken = cancel.Token;
        Assert.ThrowsAny<OperationCanceledException>(() => Fit(first));
        var resumed = Fit(Options(folder.File("run.ckpt"), 8));

        Assert.Equal(straight.LossHistory, resumed.LossHistory);
        Assert.Equal(CheckpointFolder.Tensors(folder.File("straight.ckpt")), CheckpointFolder.Tensors(folder.File("run.ckpt")));
    }
}
