using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary><see cref="TrainingOptions.TableWarmupSteps"/>: the tables' rate warms up on its own schedule, the dense
/// rate keeps <see cref="TrainingOptions.WarmupSteps"/>, and unset it is the one schedule of before.</summary>
public class TableWarmupTests
{
    private static (double[] Dense, double[] Tables) Rates(TrainingOptions options, params int[] steps)
    {
        random.manual_seed(1);
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { Width = 32, Heads = 2, Layers = 1, ContextLength = 16 });
        using var optimizer = new ModelOptimizer(model, options);
        return ([.. steps.Select(optimizer.LearningRateAt)], [.. steps.Select(optimizer.TableLearningRateAt)]);
    }

    [Fact]
    public void The_tables_warm_up_over_their_own_steps_and_the_dense_rate_does_not_follow()
    {
        var options = new TrainingOptions { MaxSteps = 100, LearningRate = 1e-3, TableLearningRate = 4e-3, WarmupSteps = 2, TableWarmupSteps = 10 };

        var (dense, tables) = Rates(options, 0, 1, 4, 9);

        Assert.Equal([0.5e-3, 1e-3], dense[..2]);                           // dense: peak after 2 steps, then cosine
        Assert.True(dense[2] < 1e-3 && dense[3] < dense[2]);
        Assert.Equal([0.4e-3, 0.8e-3, 2e-3, 4e-3], tables, (a, b) => Math.Abs(a - b) < 1e-15);   // tables: (step + 1) / 10 of 4e-3
    }

    [Fact]
    public void Unset_the_tables_follow_the_shared_warm_up()
    {
        var shared = new TrainingOptions { MaxSteps = 100, TableLearningRate = 3e-3, WarmupSteps = 7 };

        var (_, unset) = Rates(shared, 0, 3, 6, 50, 99);
        var (_, same) = Rates(shared with { TableWarmupSteps = 7 }, 0, 3, 6, 50, 99);

        Assert.Equal(same, unset);
        Assert.Equal(3e-3 / 7, unset[0], 15);
    }

    [Fact]
    public void A_negative_table_warm_up_is_refused()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new TrainingOptions { TableWarmupSteps = -1 }.Validate());
        Assert.Equal("TableWarmupSteps", e.ParamName);
    }
}
