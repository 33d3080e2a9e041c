using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

// Inside the namespace, so that ml.Model.ConvertToOnnx binds to this library's overloads before ML.NET's (OnnxConverterPipelineTests).
using Microsoft.ML.MemoryFormer.Onnx;

public class MemoryFormerTabularOneHotTests
{
    public sealed class Row
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
        public bool Label { get; set; }
    }

    /// <summary>Slot 0 numeric, slots 1–3 the one-hot of a category that shifts the decision boundary: x₀ + shift[c] &gt; 0.</summary>
    private static IEnumerable<Row> Rows(int count, int seed)
    {
        var random = new Random(seed);
        float[] shift = [-1f, 0f, 1.5f];
        for (int i = 0; i < count; i++)
        {
            float x = (float)(random.NextDouble() * 4 - 2);
            int c = random.Next(3);
            var features = new float[4];
            features[0] = x;
            features[1 + c] = 1;
            yield return new Row { Features = features, Label = x + shift[c] > 0 };
        }
    }

    private static MemoryFormerTabularOptions Grouped(int epochs)
    {
        var options = TabularRows.TinyOptions(epochs);
        options.GroupOneHotSlots = true;
        return options;
    }

    [Fact]
    public void A_one_hot_column_becomes_one_token_and_the_model_learns_from_its_category()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(Rows(384, 1));
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(Grouped(20)).Fit(train);
        Assert.Equal([0, 1, 1, 1], model.Info.SlotTokens!);
        Assert.Equal(2, model.Info.TokenCount);
        Assert.Equal([0f, 0f, 0f], model.Info.Scaler.Means.Skip(1));      // one-hot slots stay raw 0/1
        var metrics = ml.BinaryClassification.Evaluate(model.Transform(ml.Data.LoadFromEnumerable(Rows(200, 2))));
        Assert.True(metrics.Accuracy > 0.9, $"accuracy {metrics.Accuracy}");
    }

    [Theory]
    [InlineData(TabularNumericEmbedding.Linear)]
    [InlineData(TabularNumericEmbedding.PiecewiseLinear)]
    public void A_rows_scores_do_not_depend_on_its_batch_whatever_the_other_rows_hold(TabularNumericEmbedding embedding)
    {
        // Rows that take the per-group path beside rows that cannot (a NaN or a fraction in a group slot, two categories at
        // once) and rows with a missing numeric value: every row scores the same alone, in a batch of any size, and in any company.
        var ml = new MLContext(1);
        var options = Grouped(3);
        options.NumericEmbedding = embedding;
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(ml.Data.LoadFromEnumerable(Rows(256, 1)));
        var rows = Rows(40, 3).ToArray();
        rows[3].Features[0] = float.NaN;                 // missing numeric value
        rows[7].Features[2] = float.NaN;                 // missing category slot
        rows[11].Features[1] = 0.5f;                     // not one-hot
        rows[15].Features[1] = rows[15].Features[3] = 1; // two categories
        float[] Scores(IEnumerable<Row> batch) => model.Transform(ml.Data.LoadFromEnumerable(batch)).GetColumn<float>("Score").ToArray();

        var together = Scores(rows);
        var alone = rows.Select(r => Scores([r])[0]).ToArray();
        var clean = Enumerable.Range(0, rows.Length).Where(i => i is not (3 or 7 or 11 or 15)).ToArray();
        Assert.Equal(alone, together);
        Assert.Equal(clean.Select(i => alone[i]), Scores(clean.Select(i => rows[i])));   // a batch every row of which takes the group path
        using var engine = ml.Model.CreatePredictionEngine<Row, ScoreRow>(model);
        Assert.Equal(alone, rows.Select(r => engine.Predict(r).Score));
    }

    private sealed class ScoreRow
    {
        public float Score { get; set; }
    }

    [Fact]
    public void Without_the_option_every_slot_keeps_its_token()
    {
        var ml = new MLContext(1);
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1))
            .Fit(ml.Data.LoadFromEnumerable(Rows(64, 1)));
        Assert.Null(model.Info.SlotTokens);
        Assert.Equal(4, model.Info.TokenCount);
    }

    [Fact]
    public void A_grouped_model_saves_its_groups_and_loads_with_identical_scores()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(Rows(64, 1));
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(Grouped(2)).Fit(train);
        var path = Path.Combine(Path.GetTempPath(), $"mf-tab-onehot-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext(2);
            fresh.ComponentCatalog.RegisterMemoryFormer();
            var loaded = fresh.Model.Load(path, out _);
            Assert.Equal(model.Info.SlotTokens, ((MemoryFormerTabularTransformer)loaded).Info.SlotTokens);
            var before = model.Transform(train).GetColumn<float>("Probability").ToArray();
            var after = loaded.Transform(fresh.Data.LoadFromEnumerable(Rows(64, 1))).GetColumn<float>("Probability").ToArray();
            Assert.Equal(before, after);
            (loaded as IDisposable)?.Dispose();
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void The_same_seed_gives_the_same_grouped_model()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(Rows(96, 3));
        using var first = ml.BinaryClassification.Trainers.MemoryFormerTabular(Grouped(2)).Fit(train);
        using var second = ml.BinaryClassification.Trainers.MemoryFormerTabular(Grouped(2)).Fit(train);
        Assert.Equal(first.Transform(train).GetColumn<float>("Score").ToArray(), second.Transform(train).GetColumn<float>("Score").ToArray());
    }

    [Fact]
    public void An_exported_grouped_model_scores_as_the_model_does()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Rows(64, 1));
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(Grouped(2)).Fit(data);
        using var stream = new MemoryStream();
        ml.Model.ConvertToOnnx(model, data, stream);
        var features = data.GetColumn<float[]>("Features").ToArray();
        var outputs = Onnx.OnnxRunner.Run(stream.ToArray(),
            Onnx.OnnxRunner.Floats(MemoryFormerOnnxNames.Features, features.SelectMany(f => f).ToArray(), features.Length, 4));
        var probabilities = outputs[MemoryFormerOnnxNames.Probabilities].Values;
        Onnx.OnnxRunner.AssertClose(model.Transform(data).GetColumn<float>("Probability").ToArray(),
            Enumerable.Range(0, features.Length).Select(r => probabilities[2 * r + 1]).ToArray(), "Probability");
    }
}
