using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.Onnx;

// Inside the namespace, so that ml.Model.ConvertToOnnx binds to this library's overloads before ML.NET's (OnnxConverterPipelineTests).
using Microsoft.ML.MemoryFormer.Onnx;

/// <summary>Every numeric embedding of the tabular trainer exports, and ONNX Runtime scores as the model does: missing values,
/// values beyond the training range (where piecewise-linear encodings extrapolate) and one-hot groups included.</summary>
public class OnnxTabularEmbeddingTests
{
    public sealed class Row
    {
        [VectorType(5)] public float[] Features { get; set; } = [];
        public bool Label { get; set; }
    }

    /// <summary>Slots 0–1 numeric (some NaN, some far outside the training range when <paramref name="wide"/>), slots 2–4 the
    /// one-hot of a category that shifts the boundary.</summary>
    private static List<Row> Rows(int count, int seed, bool wide = false)
    {
        var random = new Random(seed);
        float[] shift = [-1f, 0f, 1.5f];
        var rows = new List<Row>();
        for (int i = 0; i < count; i++)
        {
            float x = (float)(random.NextDouble() * 4 - 2) * (wide ? 4 : 1), y = (float)(random.NextDouble() * 2 - 1);
            int c = random.Next(3);
            var features = new float[5];
            features[0] = x;
            features[1] = random.NextDouble() < 0.15 ? float.NaN : y;
            features[2 + c] = 1;
            rows.Add(new Row { Features = features, Label = x + shift[c] + (float.IsNaN(features[1]) ? 0.5f : y) > 0 });
        }
        return rows;
    }

    private static MemoryFormerTabularOptions Options(TabularNumericEmbedding embedding, bool groups)
    {
        var options = TabularRows.TinyOptions(epochs: 3);
        options.NumericEmbedding = embedding;
        options.GroupOneHotSlots = groups;
        options.PiecewiseLinearBins = 6;
        options.PeriodicFrequencies = 4;
        options.PeriodicScale = 0.5;
        return options;
    }

    [Theory]
    [InlineData(TabularNumericEmbedding.PiecewiseLinear, true)]
    [InlineData(TabularNumericEmbedding.PiecewiseLinear, false)]
    [InlineData(TabularNumericEmbedding.Periodic, true)]
    [InlineData(TabularNumericEmbedding.PeriodicLinear, false)]
    public void An_exported_model_scores_as_the_model_does(TabularNumericEmbedding embedding, bool groups)
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(Rows(96, 1));
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(Options(embedding, groups)).Fit(train);
        Assert.Equal(embedding, model.Info.NumericEmbedding);
        Assert.Equal(groups, model.Info.SlotTokens is not null);
        using var stream = new MemoryStream();
        ml.Model.ConvertToOnnx(model, train, stream);

        var scoredRows = Rows(48, 2, wide: true);
        var features = scoredRows.Select(r => r.Features).ToArray();
        Assert.Contains(features, f => float.IsNaN(f[1]));
        Assert.Contains(features, f => Math.Abs(f[0]) > 4);                      // beyond every training value
        var outputs = OnnxRunner.Run(stream.ToArray(),
            OnnxRunner.Floats(MemoryFormerOnnxNames.Features, features.SelectMany(f => f).ToArray(), features.Length, 5));
        var probabilities = outputs[MemoryFormerOnnxNames.Probabilities].Values;
        var expected = model.Transform(ml.Data.LoadFromEnumerable(scoredRows)).GetColumn<float>("Probability").ToArray();
        OnnxRunner.AssertClose(expected, Enumerable.Range(0, features.Length).Select(r => probabilities[2 * r + 1]).ToArray(), "Probability");
    }

    [Fact]
    public void An_exported_piecewise_linear_regression_model_predicts_in_label_units()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 4));
        var options = TabularRows.TinyOptions(epochs: 2);
        options.NumericEmbedding = TabularNumericEmbedding.PiecewiseLinear;
        options.PiecewiseLinearBins = 8;
        using var model = ml.Regression.Trainers.MemoryFormerTabular(options).Fit(data);
        using var stream = new MemoryStream();
        model.ExportToOnnx(stream);

        var features = data.GetColumn<float[]>("Features").ToArray();
        var outputs = OnnxRunner.Run(stream.ToArray(),
            OnnxRunner.Floats(MemoryFormerOnnxNames.Features, features.SelectMany(f => f).ToArray(), features.Length, 4));
        OnnxRunner.AssertClose(model.Transform(data).GetColumn<float>("Score").ToArray(), outputs[MemoryFormerOnnxNames.Score].Values, "Score");
    }
}
