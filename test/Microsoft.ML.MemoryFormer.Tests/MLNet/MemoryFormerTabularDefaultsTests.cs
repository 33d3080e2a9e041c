using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerTabularDefaultsTests
{
    [Fact]
    public void A_small_table_gets_the_small_table_budget_for_options_left_at_their_defaults()
    {
        var options = new MemoryFormerTabularOptions { Epochs = 7 };
        var (small, note) = options.ForRows(500);
        Assert.NotSame(options, small);
        Assert.Equal((32, 7, 15, 0.15), (small.BatchSize, small.Epochs, small.EarlyStoppingPatience, small.ValidationFraction));
        Assert.Equal((TabularNumericEmbedding.Linear, false), (small.NumericEmbedding, small.GroupOneHotSlots));
        Assert.Contains("small table: batch 32", note, StringComparison.Ordinal);
        Assert.Equal((256, 7, 5, 0.1), (options.BatchSize, options.Epochs, options.EarlyStoppingPatience, options.ValidationFraction));
        Assert.Equal(((TabularNumericEmbedding?)null, (bool?)null), (options.NumericEmbedding, options.GroupOneHotSlots));
        Assert.Equal(100, new MemoryFormerTabularOptions().ForRows(500).Options.Epochs);
    }

    [Fact]
    public void A_mid_sized_table_and_switched_off_size_awareness_keep_the_options_with_linear_tokens()
    {
        var options = new MemoryFormerTabularOptions();
        foreach (var (rows, aware) in new[] { ((long)MemoryFormerTabularOptions.SmallTableRows, true),
            (MemoryFormerTabularOptions.LargeTableRows - 1, true), (10, false), (long.MaxValue, false) })
        {
            options.SizeAwareDefaults = aware;
            var (resolved, note) = options.ForRows(rows);
            Assert.Null(note);
            Assert.Equal((256, 30, 5, 0.1), (resolved.BatchSize, resolved.Epochs, resolved.EarlyStoppingPatience, resolved.ValidationFraction));
            Assert.Equal((TabularNumericEmbedding.Linear, false), (resolved.NumericEmbedding, resolved.GroupOneHotSlots));
        }
    }

    [Fact]
    public void A_large_table_gets_piecewise_linear_tokens_and_one_hot_groups_unless_the_caller_chose()
    {
        var (large, note) = new MemoryFormerTabularOptions().ForRows(MemoryFormerTabularOptions.LargeTableRows);
        Assert.Equal((TabularNumericEmbedding.PiecewiseLinear, true), (large.NumericEmbedding, large.GroupOneHotSlots));
        Assert.Equal((256, 30, 5), (large.BatchSize, large.Epochs, large.EarlyStoppingPatience));
        Assert.Contains("large table: numeric embedding PiecewiseLinear, one token per one-hot column on", note, StringComparison.Ordinal);

        var chosen = new MemoryFormerTabularOptions { NumericEmbedding = TabularNumericEmbedding.Linear, GroupOneHotSlots = false };
        var (kept, keptNote) = chosen.ForRows(1_000_000);
        Assert.Equal((TabularNumericEmbedding.Linear, false), (kept.NumericEmbedding, kept.GroupOneHotSlots));
        Assert.Null(keptNote);
        var (half, _) = new MemoryFormerTabularOptions { GroupOneHotSlots = false }.ForRows(1_000_000);
        Assert.Equal((TabularNumericEmbedding.PiecewiseLinear, false), (half.NumericEmbedding, half.GroupOneHotSlots));
    }

    public sealed class OneHotRow
    {
        [VectorType(5)] public float[] Features { get; set; } = [];
        public bool Label { get; set; }
    }

    /// <summary>Slots 0–1 numeric, 2–4 the one-hot of a category.</summary>
    private static IEnumerable<OneHotRow> OneHotRows(int count)
    {
        var random = new Random(3);
        for (int i = 0; i < count; i++)
        {
            float x = (float)(random.NextDouble() * 4 - 2), y = (float)(random.NextDouble() * 4 - 2);
            int c = random.Next(3);
            var features = new float[5];
            (features[0], features[1], features[2 + c]) = (x, y, 1);
            yield return new OneHotRow { Features = features, Label = x + c - 1 > 0 };
        }
    }

    [Fact]
    public void Fit_on_a_large_table_with_defaults_trains_piecewise_linear_tokens_over_one_hot_groups()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(OneHotRows(MemoryFormerTabularOptions.LargeTableRows));
        var lines = new List<string>();
        var options = new MemoryFormerTabularOptions
        {
            Architecture = TabularPresets.Small with { Width = 16, Layers = 1, Heads = 2, Dropout = 0 }, Seed = 7, Log = lines.Add,
            Epochs = 1, PiecewiseLinearBins = 4,
        };
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(train);
        Assert.Contains(lines, l => l.Contains("large table", StringComparison.Ordinal));
        Assert.Equal(TabularNumericEmbedding.PiecewiseLinear, model.NumericEmbedding);
        Assert.Equal(3, model.FeatureTokens);                                   // two numeric slots and one one-hot column
        Assert.Equal([0, 1, 2, 2, 2], model.Info.SlotTokens!);
        Assert.Null(options.NumericEmbedding);   // the caller's options are not modified
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
        Assert.Equal((TabularNumericEmbedding.Linear, 4), (model.NumericEmbedding, model.FeatureTokens));
        // The large-table defaults (30 epochs of 256 rows) would stop after 30 steps; batches of 32 make 6 steps an epoch.
        Assert.True(model.TrainingResult!.Steps > 30, $"{model.TrainingResult.Steps} steps");
        Assert.Equal(256, options.BatchSize);   // the caller's options are not modified
    }
}
