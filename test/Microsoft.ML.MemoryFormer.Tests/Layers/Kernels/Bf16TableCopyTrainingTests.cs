using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// Training with <see cref="KernelSettings.Bf16ForwardTables"/>: the fused table update keeps every copy equal to the rounded
/// fp32 table without rebuilding it; a separate optimizer step marks it stale and the next forward rebuilds it; and two runs
/// with the same seed give the same bits.
/// </summary>
public class Bf16TableCopyTrainingTests
{
    [SkippableTheory]
    [InlineData(MomentPrecision.BFloat16)]
    [InlineData(MomentPrecision.Float32)]
    public void The_fused_update_keeps_every_copy_equal_to_the_rounded_table_without_a_rebuild(MomentPrecision moments)
    {
        Skip.IfNot(TableVersion.IsAvailable, "Needs libtorch's version counter.");
        Steps(TableGradientClipping.PreviousStep, moments, 3, (model, step) =>
        {
            foreach (var layer in ParameterGroups.TableLayers(model))
            {
                Bf16TableCopyTests.AssertCopyIsRounded(layer);
                Assert.Equal(1, layer.ForwardCopy.Rebuilds);                     // built by the first forward, then only row writes
            }
        });
    }

    [SkippableFact]
    public void A_separate_optimizer_step_makes_the_copy_stale_and_the_next_forward_rebuilds_it()
    {
        Skip.IfNot(TableVersion.IsAvailable, "Needs libtorch's version counter.");
        Steps(TableGradientClipping.Global, MomentPrecision.BFloat16, 3, (model, step) =>
        {
            foreach (var layer in ParameterGroups.TableLayers(model))
            {
                Assert.False(layer.ForwardCopy.IsCurrent(layer.Table), "the step's raw write went unnoticed");
                Assert.Equal(step + 1, layer.ForwardCopy.Rebuilds);              // one per forward
            }
        });
    }

    [SkippableFact]
    public void Two_runs_with_the_same_seed_give_the_same_bits()
    {
        Skip.IfNot(TableVersion.IsAvailable, "Needs libtorch's version counter.");
        var first = Train(on: true);
        var second = Train(on: true);
        Assert.Equal(first.Losses, second.Losses);
        Assert.All(first.Parameters.Zip(second.Parameters), p => Assert.True(p.First.AsSpan().SequenceEqual(p.Second)));
        var fp32 = Train(on: false).Parameters;
        Assert.False(fp32.Zip(first.Parameters).All(p => p.First.AsSpan().SequenceEqual(p.Second)), "the switch changed nothing");
    }

    [SkippableFact]
    public unsafe void The_training_option_trains_as_the_switch_does_for_that_run_only()
    {
        Skip.IfNot(TableVersion.IsAvailable, "Needs libtorch's version counter.");
        var bySwitch = Train(on: true);
        var byOption = Train(on: false, option: true);
        Assert.Equal(bySwitch.Losses, byOption.Losses);
        Assert.All(bySwitch.Parameters.Zip(byOption.Parameters), p => Assert.True(p.First.AsSpan().SequenceEqual(p.Second)));
    }

    [SkippableFact]
    public void The_blocked_update_marks_an_existing_copy_stale_without_breaking_a_retained_graph()
    {
        Skip.IfNot(TableVersion.IsAvailable && BlockedTableGradient.IsAccelerated, "Needs libtorch's version counter and AVX-512.");
        random.manual_seed(9);
        using var model = new LanguageModel(Config);
        var task = new LanguageModelTask(model, Windows(), Windows(), batchSize: 16, seed: 9, CPU);
        var layers = ParameterGroups.TableLayers(model).ToList();
        using var optimizer = new ModelOptimizer(model, new TrainingOptions
        {
            MaxSteps = 2, TableGradientClipping = TableGradientClipping.PreviousStep, TableMomentPrecision = MomentPrecision.Float32, // the blocked update takes fp32 moments
        });
        model.train();
        KernelSettings.Current.With(k => k.Bf16ForwardTables = true, () =>
        {
            using var scope = NewDisposeScope();
            optimizer.ZeroGrad(0);
            task.Loss(0).Loss.backward();                                       // the copies are made and kept by the row pass
            optimizer.Step(0);
        });
        Assert.All(layers, l => Assert.True(l.ForwardCopy.IsCurrent(l.Table)));
        KernelSettings.Current.With(k => k.BlockedTableGradient = true, () =>
        {
            using var scope = NewDisposeScope();
            optimizer.ZeroGrad(1);
            var loss = task.Loss(1).Loss;
            loss.backward(retain_graph: true);                                  // the blocked update writes the tables, not the copies
            Assert.All(layers, l => Assert.False(l.ForwardCopy.IsCurrent(l.Table), "the blocked update's raw write went unnoticed"));
            loss.backward();                                                    // no in-place error from the saved tables
            optimizer.Step(1);
        });
    }

    private static unsafe (byte[][] Parameters, IReadOnlyList<double> Losses) Train(bool on, bool option = false)
    {
        byte[][] parameters = [];
        IReadOnlyList<double> losses = [];
        KernelSettings.Current.With(k => k.Bf16ForwardTables = on, () =>
        {
            random.manual_seed(9);
            using var model = new LanguageModel(Config);
            var task = new LanguageModelTask(model, Windows(), Windows(), batchSize: 16, seed: 9, CPU);
            var result = TrainingLoop.Run(model, task, new TrainingOptions { MaxSteps = 4, WarmupSteps = 1, ReportEvery = 1, MixedPrecisionTables = option });
            Assert.All(ParameterGroups.TableLayers(model), l =>
            {
                Assert.False(l.ForwardCopy.Requested);                            // the option ends with the run
                Assert.True(option || !on ? l.ForwardCopy.Pointer == null : l.ForwardCopy.Pointer != null, "the copy's memory after the run");
            });
            parameters = model.parameters().Select(p => p.bytes.ToArray()).ToArray();
            losses = result.LossHistory;
        });
        return (parameters, losses);
    }

    private static readonly MemoryFormerConfig Config = MemoryFormerConfig.Nano with { Width = 64, Heads = 2, BitsPerChunk = 8, Layers = 1, ContextLength = 32 };

    private static Tensor Windows() => randint(0, 64, [16, 33], dtype: ScalarType.Int64, generator: new TorchSharp.torch.Generator(3));

    /// <summary>Training steps with the switch on, <paramref name="check"/> after each optimizer step.</summary>
    private static void Steps(TableGradientClipping clipping, MomentPrecision moments, int count, Action<LanguageModel, int> check) =>
        KernelSettings.Current.With(k => k.Bf16ForwardTables = true, () =>
        {
            random.manual_seed(9);
            using var model = new LanguageModel(Config);
            var task = new LanguageModelTask(model, Windows(), Windows(), batchSize: 16, seed: 9, CPU);
            using var optimizer = new ModelOptimizer(model, new TrainingOptions
            {
                MaxSteps = count, GradientClip = 1e-3, TableGradientClipping = clipping, TableMomentPrecision = moments,
            });
            model.train();
            Assert.NotEmpty(ParameterGroups.TableLayers(model));
            for (int step = 0; step < count; step++)
            {
                using var scope = NewDisposeScope();
                optimizer.ZeroGrad(step);
                task.Loss(step).Loss.backward();
                optimizer.Step(step);
                check(model, step);
            }
        });
}
