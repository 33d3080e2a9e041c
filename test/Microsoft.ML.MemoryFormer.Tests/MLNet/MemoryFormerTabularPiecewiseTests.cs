using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Onnx;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerTabularPiecewiseTests
{
    /// <summary>A target with a kink and a jump in x₀ that a linear token of x₀ cannot express: 10 + 3·|x₀| + 4·[x₀ &gt; 1].</summary>
    private static IEnumerable<TabularRows.Regression> KinkRows(int count, int seed) =>
        TabularRows.Points(count, seed).Select(x => new TabularRows.Regression
        {
            Features = x, Label = 10 + 3 * MathF.Abs(x[0]) + (x[0] > 1 ? 4 : 0),
        });

    private static MemoryFormerTabularOptions Piecewise(int epochs, TabularBinning binning = TabularBinning.Tree)
    {
        var options = TabularRows.TinyOptions(epochs);
        options.NumericEmbedding = TabularNumericEmbedding.PiecewiseLinear;
        options.PiecewiseLinearBins = 8;
        options.PiecewiseLinearBinning = binning;
        return options;
    }

    [Theory]
    [InlineData(TabularBinning.Tree)]
    [InlineData(TabularBinning.Quantile)]
    public void Piecewise_linear_embeddings_learn_a_kinked_target(TabularBinning binning)
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(KinkRows(384, 1));
        var test = ml.Data.LoadFromEnumerable(KinkRows(128, 2));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(Piecewise(20, binning)).Fit(train);
        var metrics = ml.Regression.Evaluate(model.Transform(test));
        Assert.True(metrics.RSquared > 0.9, $"R² = {metrics.RSquared}");
        Assert.True(model.Info.BinEdges![0].Length > 2, "slot 0 was binned");
    }

    [Fact]
    public void A_piecewise_linear_model_saves_its_edges_and_loads_with_identical_scores()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(KinkRows(64, 1));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(Piecewise(epochs: 2)).Fit(train);
        Assert.Equal(TabularNumericEmbedding.PiecewiseLinear, model.Info.NumericEmbedding);
        var path = Path.Combine(Path.GetTempPath(), $"mf-tab-ple-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext(2);
            fresh.ComponentCatalog.RegisterMemoryFormer();
            var loaded = fresh.Model.Load(path, out _);
            Assert.Equal(model.Info.BinEdges, ((MemoryFormerTabularTransformer)loaded).Info.BinEdges);
            var before = model.Transform(train).GetColumn<float>("Score").ToArray();
            var after = loaded.Transform(fresh.Data.LoadFromEnumerable(KinkRows(64, 1))).GetColumn<float>("Score").ToArray();
            Assert.Equal(before, after);
            (loaded as IDisposable)?.Dispose();
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void The_same_seed_gives_the_same_piecewise_linear_model()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(KinkRows(96, 3));
        using var first = ml.Regression.Trainers.MemoryFormerTabular(Piecewise(epochs: 2)).Fit(train);
        using var second = ml.Regression.Trainers.MemoryFormerTabular(Piecewise(epochs: 2)).Fit(train);
        Assert.Equal(first.Transform(train).GetColumn<float>("Score").ToArray(), second.Transform(train).GetColumn<float>("Score").ToArray());
    }

    [Fact]
    public void Bad_piecewise_linear_options_are_refused_by_name()
    {
        foreach (int bins in new[] { 0, 257 })
        {
            var options = Piecewise(1);
            options.PiecewiseLinearBins = bins;
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(1).Regression.Trainers.MemoryFormerTabular(options));
            Assert.Equal(nameof(options.PiecewiseLinearBins), e.ParamName);
        }
        var leaf = Piecewise(1);
        leaf.PiecewiseLinearMinLeafRows = 0;
        Assert.Equal(nameof(leaf.PiecewiseLinearMinLeafRows),
            Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(1).Regression.Trainers.MemoryFormerTabular(leaf)).ParamName);
        var bad = Piecewise(1);
        bad.PiecewiseLinearBinning = (TabularBinning)7;
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(1).Regression.Trainers.MemoryFormerTabular(bad));
        Assert.Equal(nameof(bad.PiecewiseLinearBinning), error.ParamName);
    }
}
