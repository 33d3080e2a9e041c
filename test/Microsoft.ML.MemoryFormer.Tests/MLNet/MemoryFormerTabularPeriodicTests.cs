using Microsoft.ML.Data;
using System.Text.Json;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Onnx;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerTabularPeriodicTests
{
    /// <summary>A target no linear token of x₀ can express on its own: 10 + 3·sin(3·x₀).</summary>
    private static IEnumerable<TabularRows.Regression> WaveRows(int count, int seed) =>
        TabularRows.Points(count, seed).Select(x => new TabularRows.Regression { Features = x, Label = 10 + 3 * MathF.Sin(3 * x[0]) });

    private static MemoryFormerTabularOptions Periodic(int epochs = 25, TabularNumericEmbedding kind = TabularNumericEmbedding.Periodic)
    {
        var options = TabularRows.TinyOptions(epochs);
        options.NumericEmbedding = kind;
        options.PeriodicFrequencies = 8;
        options.PeriodicScale = 0.5;
        return options;
    }

    [Theory]
    [InlineData(TabularNumericEmbedding.Periodic)]
    [InlineData(TabularNumericEmbedding.PeriodicLinear)]
    public void Periodic_embeddings_learn_a_wave_target(TabularNumericEmbedding kind)
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(WaveRows(384, 1));
        var test = ml.Data.LoadFromEnumerable(WaveRows(128, 2));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(Periodic(epochs: 30, kind)).Fit(train);
        var metrics = ml.Regression.Evaluate(model.Transform(test));
        Assert.True(metrics.RSquared > 0.9, $"R² = {metrics.RSquared}");
    }

    [Theory]
    [InlineData(TabularNumericEmbedding.Periodic)]
    [InlineData(TabularNumericEmbedding.PeriodicLinear)]
    public void A_periodic_model_saves_its_embedding_and_loads_with_identical_scores(TabularNumericEmbedding kind)
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(WaveRows(64, 1));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(Periodic(epochs: 2, kind)).Fit(train);
        Assert.Equal(kind, model.Info.NumericEmbedding);
        Assert.Equal(8, model.Info.PeriodicFrequencies);
        var path = Path.Combine(Path.GetTempPath(), $"mf-tab-periodic-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext(2);
            fresh.ComponentCatalog.RegisterMemoryFormer();
            var loaded = fresh.Model.Load(path, out _);
            var before = model.Transform(train).GetColumn<float>("Score").ToArray();
            var after = loaded.Transform(fresh.Data.LoadFromEnumerable(WaveRows(64, 1))).GetColumn<float>("Score").ToArray();
            Assert.Equal(before, after);
            (loaded as IDisposable)?.Dispose();
        }
        finally { File.Delete(path); }
    }

    private sealed class WideRow
    {
        [VectorType(48)] public float[] Features { get; set; } = [];
        public float Label { get; set; }
    }

    /// <summary>The loader's size check must not ask for more weights than a model of each embedding holds: with 48 slots its
    /// over-count of one [F, d] matrix for the embeddings that have none (periodic ones) exceeded the file's slack.</summary>
    [Theory]
    [InlineData(TabularNumericEmbedding.Linear)]
    [InlineData(TabularNumericEmbedding.Periodic)]
    [InlineData(TabularNumericEmbedding.PeriodicLinear)]
    [InlineData(TabularNumericEmbedding.PiecewiseLinear)]
    public void A_wide_table_saves_and_loads_with_every_numeric_embedding(TabularNumericEmbedding kind)
    {
        var ml = new MLContext(1);
        var random = new Random(3);
        var rows = Enumerable.Range(0, 96).Select(_ => new WideRow
        {
            Features = [.. Enumerable.Range(0, 48).Select(_ => (float)random.NextDouble())], Label = (float)random.NextDouble(),
        }).ToArray();
        var train = ml.Data.LoadFromEnumerable(rows);
        var options = Periodic(epochs: 1, kind);
        options.Architecture = options.Architecture with { Width = 32 };
        using var model = ml.Regression.Trainers.MemoryFormerTabular(options).Fit(train);
        Assert.Equal(kind, model.Info.NumericEmbedding);
        using var stream = new MemoryStream();
        ml.Model.Save(model, train.Schema, stream);
        stream.Position = 0;
        var loaded = new MLContext(2).Model.LoadChecked(stream, out _);
        Assert.Equal(model.Transform(train).GetColumn<float>("Score"), loaded.Transform(train).GetColumn<float>("Score"));
        (loaded as IDisposable)?.Dispose();
    }

    [Fact]
    public void Model_info_saved_before_the_option_reads_as_linear()
    {
        var info = new TabularModelInfo("Features", new LabelColumn("Label", PredictionKind.Regression, 1, null), new FeatureScaler([0f], [1f]), 0f, 1f);
        var json = JsonSerializer.Serialize(info, MemoryFormerConfig.JsonOptions);
        using var document = JsonDocument.Parse(json);
        var old = document.RootElement.EnumerateObject()
            .Where(p => p.Name is not (nameof(TabularModelInfo.NumericEmbedding) or nameof(TabularModelInfo.PeriodicFrequencies)))
            .ToDictionary(p => p.Name, p => p.Value);
        Assert.Equal(document.RootElement.EnumerateObject().Count() - 2, old.Count);   // both new fields were written and removed
        var read = JsonSerializer.Deserialize<TabularModelInfo>(JsonSerializer.Serialize(old), MemoryFormerConfig.JsonOptions)!;
        Assert.Equal(TabularNumericEmbedding.Linear, read.NumericEmbedding);
        Assert.Equal(0, read.PeriodicFrequencies);
        Assert.Null(read.BinEdges);                                                  // nor piecewise-linear bins
    }

    [Fact]
    public void Bad_periodic_options_are_refused_by_name()
    {
        var options = Periodic();
        options.PeriodicFrequencies = 0;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(1).Regression.Trainers.MemoryFormerTabular(options));
        Assert.Equal(nameof(options.PeriodicFrequencies), e.ParamName);
        options = Periodic();
        options.PeriodicScale = double.NaN;
        e = Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(1).Regression.Trainers.MemoryFormerTabular(options));
        Assert.Equal(nameof(options.PeriodicScale), e.ParamName);
    }
}
