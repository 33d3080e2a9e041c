using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Tests.MLNet;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Diagnostics;

public class BucketUsageTests
{
    private static long[] NaiveCount(Tensor rows, long tableRows)
    {
        var counts = new long[tableRows];
        foreach (long row in rows.reshape(-1).data<long>()) counts[row]++;
        return counts;
    }

    [Fact]
    public void Recorded_counts_equal_a_naive_count_of_the_hashed_rows()
    {
        random.manual_seed(3);
        var config = MemoryFormerConfig.Nano;
        using var block = new MemoryBlock(config);
        block.eval();
        var x = randn(40, config.Width);
        long[] expected1, expected2;
        using (no_grad())
        {
            expected1 = NaiveCount(block.Expand.Hash(x).Rows, (long)block.Expand.ChunkCount << block.Expand.BitsPerChunk);
            var hidden = block.Norm.call(block.Expand.call(x));
            expected2 = NaiveCount(block.Project.Hash(hidden).Rows, (long)block.Project.ChunkCount << block.Project.BitsPerChunk);
        }
        using var recorder = BucketUsageRecorder.Attach(block);
        using (no_grad()) { block.call(x); block.call(x); }
        var usage = recorder.Snapshot();
        Assert.Equal(["expand", "project"], usage.Select(u => u.Layer));
        Assert.Equal(expected1.Select(c => 2 * c), usage[0].Counts);
        Assert.Equal(expected2.Select(c => 2 * c), usage[1].Counts);
        Assert.Equal(2L * 40 * block.Expand.ChunkCount, usage[0].TotalHits);
        recorder.Reset();
        Assert.All(recorder.Snapshot(), u => Assert.Equal(0, u.TotalHits));
    }

    [Fact]
    public void A_language_model_reports_QKV_once_per_block_and_detaches_on_dispose()
    {
        random.manual_seed(4);
        using var model = new LanguageModel(MemoryFormerConfig.Nano);
        model.eval();
        var tokens = randint(0, 64, [2, 12]);
        var recorder = BucketUsageRecorder.Attach(model);
        using (no_grad()) model.call(tokens);
        var usage = recorder.Snapshot();
        Assert.Equal(3 * MemoryFormerConfig.Nano.Layers, usage.Count);
        Assert.EndsWith("qkv", usage[0].Layer, StringComparison.Ordinal);
        Assert.All(usage, u => Assert.Equal(24L * u.TableCount, u.TotalHits));
        Assert.Throws<InvalidOperationException>(() => BucketUsageRecorder.Attach(model));
        recorder.Dispose();
        using var again = BucketUsageRecorder.Attach(model);   // detached: a new recorder may attach
        Assert.Equal(usage.Count, again.LayerCount);
    }

    [Fact]
    public void Entropy_is_one_for_uniform_and_zero_for_one_hot_hits()
    {
        Assert.Equal(1.0, BucketUsage.NormalisedEntropy([5, 5, 5, 5]), 12);
        Assert.Equal(0.0, BucketUsage.NormalisedEntropy([0, 9, 0, 0]), 12);
        Assert.Equal(0.0, BucketUsage.NormalisedEntropy([0, 0, 0, 0]), 12);
        double half = BucketUsage.NormalisedEntropy([1, 1, 0, 0]);
        Assert.Equal(0.5, half, 12);                                       // ln 2 / ln 4
    }

    [Fact]
    public void Never_hit_fraction_counts_rows_without_hits_per_table_and_overall()
    {
        var usage = new BucketUsage("layer", tableCount: 2, rowsPerTable: 4, counts: [0, 3, 0, 1, 2, 2, 2, 2]);
        Assert.Equal(0.5, usage.NeverHitFractionOf(0));
        Assert.Equal(0.0, usage.NeverHitFractionOf(1));
        Assert.Equal(0.25, usage.NeverHitFraction());
        Assert.Equal(1.0, usage.NormalisedEntropyOf(1), 12);
        Assert.Equal(12, usage.TotalHits);
        Assert.Throws<ArgumentException>(() => new BucketUsage("layer", 2, 4, [1, 2, 3]));
    }

    [Fact]
    public void Training_logs_bucket_health_and_the_trained_tabular_model_measures_it()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 1));
        var lines = new List<string>();
        var options = TabularRows.TinyOptions(epochs: 2);
        options.Log = lines.Add;
        using var model = ml.Regression.Trainers.MemoryFormerTabular(options).Fit(train);
        Assert.Contains(lines, l => l.Contains("buckets never-hit", StringComparison.Ordinal));
        var usage = model.MeasureBucketUsage(ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(10, 2)));
        Assert.NotEmpty(usage);
        int tokensPerRow = model.Architecture.ContextLength;
        Assert.All(usage, u => Assert.Equal(10L * tokensPerRow * u.TableCount, u.TotalHits));
    }
}
