using System.Reflection;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>The one mapping from every trainer's options to the training loop's, and one options style.</summary>
public class MemoryFormerTrainerOptionsTests
{
    [Fact]
    public void Tabular_options_map_to_whole_epochs_with_validation_each_epoch_and_tables_at_three_times_the_rate()
    {
        var mapped = new MemoryFormerTabularOptions { LearningRate = 2e-3 }.ToTrainingOptions(seed: 3, stepsPerEpoch: 5, validated: true);

        Assert.Equal((150, 2e-3, 6e-3, 1e-5, 0d, 0.999), (mapped.MaxSteps, mapped.LearningRate, mapped.TableLearningRate,
            mapped.WeightDecay, mapped.TableWeightDecay, mapped.Beta2));
        Assert.Equal((5, 5, 5, 5, 3), (mapped.WarmupSteps, mapped.ValidateEvery, mapped.EarlyStoppingPatience, mapped.ReportEvery, mapped.Seed));
    }

    [Fact]
    public void Text_classification_options_warm_up_for_a_fraction_of_the_run_and_validate_only_with_validation_data()
    {
        var options = new MemoryFormerTextClassificationOptions { TableLearningRate = 5e-3, EarlyStoppingPatience = 2, CheckpointPath = "run.ckpt" };

        // 5 epochs (the default) of 4 steps; warm-up 10 % of them
        var mapped = options.ToTrainingOptions(seed: 1, stepsPerEpoch: 4, validated: false);

        Assert.Equal((20, 2, 5e-3, 0.01, 0.01), (mapped.MaxSteps, mapped.WarmupSteps, mapped.TableLearningRate, mapped.WeightDecay, mapped.TableWeightDecay));
        Assert.Equal((0, 0, 4, "run.ckpt"), (mapped.ValidateEvery, mapped.EarlyStoppingPatience, mapped.ReportEvery, mapped.CheckpointPath));
    }

    [Fact]
    public void Language_model_options_validate_and_report_by_step_and_MaxSteps_overrides_epochs()
    {
        var options = new MemoryFormerLanguageModelEstimator.Options { MaxSteps = 7, WarmupSteps = 2, ValidateEvery = 3, ReportEvery = 1 };

        var mapped = options.ToTrainingOptions(seed: 9, stepsPerEpoch: 100, validated: true);

        Assert.Equal((7, 2, 3, 1, 3e-3, 0.1), (mapped.MaxSteps, mapped.WarmupSteps, mapped.ValidateEvery, mapped.ReportEvery,
            mapped.TableLearningRate, mapped.TableWeightDecay));
    }

    [Fact]
    public void Mixed_precision_tables_reach_the_training_loop_only_when_asked_for()
    {
        Assert.False(new MemoryFormerTabularOptions().ToTrainingOptions(seed: 1, stepsPerEpoch: 2, validated: false).MixedPrecisionTables);
        Assert.True(new MemoryFormerTextClassificationOptions { MixedPrecisionTables = true }
            .ToTrainingOptions(seed: 1, stepsPerEpoch: 2, validated: false).MixedPrecisionTables);
        Assert.True(new MemoryFormerLanguageModelEstimator.Options { MixedPrecisionTables = true }
            .ToTrainingOptions(seed: 1, stepsPerEpoch: 2, validated: false).MixedPrecisionTables);
    }

    [Fact]
    public void The_schedule_floor_keeps_the_loop_default_unless_set_and_a_bad_one_is_refused()
    {
        Assert.Equal(0.1, new MemoryFormerTabularOptions().ToTrainingOptions(seed: 1, stepsPerEpoch: 2, validated: false).MinLearningRateRatio);
        Assert.Equal(0d, new MemoryFormerTextClassificationOptions { MinLearningRateRatio = 0 }
            .ToTrainingOptions(seed: 1, stepsPerEpoch: 2, validated: false).MinLearningRateRatio);
        Assert.Equal(0.5, new MemoryFormerLanguageModelEstimator.Options { MinLearningRateRatio = 0.5 }
            .ToTrainingOptions(seed: 1, stepsPerEpoch: 2, validated: false).MinLearningRateRatio);

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryFormerTabularOptions { MinLearningRateRatio = 1.5 }.Validate());
        Assert.Equal("MinLearningRateRatio", e.ParamName);
        Assert.Contains("MemoryFormerTabularOptions.MinLearningRateRatio must be null (the default, 0.1) or in [0, 1]", e.Message);
    }

    [Fact]
    public void Table_weight_decay_keeps_each_trainers_rule_unless_set_and_a_bad_one_is_refused()
    {
        // unset: the language model and the text classifier decay the tables like the matrices, the tabular trainer not at all
        Assert.Equal((0.1, 0.1), Decays(new MemoryFormerLanguageModelEstimator.Options()));
        Assert.Equal((0.01, 0.01), Decays(new MemoryFormerTextClassificationOptions()));
        Assert.Equal((1e-5, 0d), Decays(new MemoryFormerTabularOptions()));

        // set: the tables' decay only, over the task's own rule; the matrices keep WeightDecay
        Assert.Equal((0.1, 0d), Decays(new MemoryFormerLanguageModelEstimator.Options { TableWeightDecay = 0 }));
        Assert.Equal((0.01, 0.3), Decays(new MemoryFormerTextClassificationOptions { TableWeightDecay = 0.3 }));
        Assert.Equal((1e-5, 0.05), Decays(new MemoryFormerTabularOptions { TableWeightDecay = 0.05 }));

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryFormerLanguageModelEstimator.Options { TableWeightDecay = -0.1 }.Validate());
        Assert.Equal("TableWeightDecay", e.ParamName);
        Assert.Contains("MemoryFormerLanguageModelEstimator.Options.TableWeightDecay must be null (the trainer's rule) or ≥ 0", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryFormerTabularOptions { TableWeightDecay = double.NaN }.Validate());

        static (double Matrices, double Tables) Decays(MemoryFormerTrainerOptions options)
        {
            var mapped = options.ToTrainingOptions(seed: 1, stepsPerEpoch: 2, validated: false);
            return (mapped.WeightDecay, mapped.TableWeightDecay);
        }
    }

    [Fact]
    public void Table_warm_up_and_lazy_updates_reach_the_training_loop_only_when_asked_for()
    {
        var unset = new MemoryFormerLanguageModelEstimator.Options { WarmupSteps = 5 }.ToTrainingOptions(seed: 1, stepsPerEpoch: 2, validated: false);
        Assert.Equal((5, (int?)null, false), (unset.WarmupSteps, unset.TableWarmupSteps, unset.LazyTableUpdates));

        var set = new MemoryFormerLanguageModelEstimator.Options { WarmupSteps = 5, TableWarmupSteps = 40, LazyTableUpdates = true }
            .ToTrainingOptions(seed: 1, stepsPerEpoch: 2, validated: false);
        Assert.Equal((5, (int?)40, true), (set.WarmupSteps, set.TableWarmupSteps, set.LazyTableUpdates));

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryFormerTabularOptions { TableWarmupSteps = -1 }.Validate());
        Assert.Equal("TableWarmupSteps", e.ParamName);
    }

    [Theory]
    [InlineData(typeof(MemoryFormerTabularOptions))]
    [InlineData(typeof(MemoryFormerTextClassificationOptions))]
    [InlineData(typeof(MemoryFormerLanguageModelEstimator.Options))]
    public void Every_options_class_derives_from_the_shared_base_and_uses_public_fields(Type type)
    {
        Assert.True(type.IsSubclassOf(typeof(MemoryFormerTrainerOptions)));
        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetCustomAttribute<ObsoleteAttribute>() is null).Select(p => p.Name);
        Assert.Empty(properties);
        Assert.Contains(type.GetFields(BindingFlags.Public | BindingFlags.Instance), f => f.Name == nameof(MemoryFormerTrainerOptions.Epochs));
    }

    [Fact]
    public void A_bad_shared_option_is_refused_naming_the_options_class_and_the_option()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryFormerTabularOptions { TableLearningRate = -1 }.Validate());
        Assert.Equal("TableLearningRate", e.ParamName);
        Assert.Contains("MemoryFormerTabularOptions.TableLearningRate must be null or a positive number", e.Message);
    }
}
