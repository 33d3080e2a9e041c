using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerTabularDefaultsTests
{
    [Fact]
    public void A_small_table_gets_the_small_table_budget_for_options_left_at_their_defaults()
    {
        var options = new MemoryFormerTabularOptions { Epochs = 7 };
        var small = options.ForRows(500);
        Assert.NotSame(options, small);
        Assert.Equal((32, 7, 15, 0.15), (small.BatchSize, small.Epochs, small.EarlyStoppingPatience, small.ValidationFraction));
        Assert.Equal((256, 7, 5, 0.1), (options.BatchSize, options.Epochs, options.EarlyStoppingPatience, options.ValidationFraction));
        Assert.Equal(100, new MemoryFormerTabularOptions().ForRows(500).Epochs);
    }

    [Fact]
    public void Large_tables_and_switched_off_size_awareness_keep_the_options()
    {
        var options = new MemoryFormerTabularOptions();
        Assert.Same(options, options.ForRows(MemoryFormerTabularOptions.SmallTableRows));
        options.SizeAwareDefaults = false;
        Assert.Same(options, options.ForRows(10));
    }

    [Fact]
    public void Fit_on_a_few_hundred_rows_with_defaults_trains_more_than_the_large_table_budget()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(200, 1));
        var lines = new List<string>();
        var options = new MemoryFormerTabularOptions
        {
            Architecture = TabularPresets.Small with { Width = 16, Layers = 1, Heads = 2, Dropout = 0 }, Seed = 7, Log = lines.Add,
        };
        using var model = ml.Regression.Trainers.MemoryFormerTabular(options).Fit(train);
        Assert.Contains(lines, l => l.Contains("small table: batch 32", StringComparison.Ordinal));
        // The large-table defaults (30 epochs of 256 rows) would stop after 30 steps; batches of 32 make 6 steps an epoch.
        Assert.True(model.TrainingResult!.Steps > 30, $"{model.TrainingResult.Steps} steps");
        Assert.Equal(256, options.BatchSize);   // the caller's options are not modified
    }
}
