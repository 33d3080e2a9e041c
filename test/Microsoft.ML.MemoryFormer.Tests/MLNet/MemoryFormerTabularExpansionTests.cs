using System.IO.Compression;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

// Inside the namespace, so that ml.Model.ConvertToOnnx binds to this library's overloads before ML.NET's (OnnxConverterPipelineTests).
using Microsoft.ML.MemoryFormer.Onnx;

public class MemoryFormerTabularExpansionTests
{
    public sealed class Row
    {
        [VectorType(5)] public float[] Features { get; set; } = [];
        public bool Label { get; set; }
    }

    public sealed class Narrow
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
    }

    /// <summary>Slot 0 numeric x; slot 1 an amount, 0 in most rows (then the label is x &gt; 0), else 5 (always true) or 9
    /// (always false) — codes, not magnitudes; slots 2–4 the one-hot of a category that shifts the boundary.
    /// <paramref name="amount"/> replaces 9 when set (a value training never saw).</summary>
    private static IEnumerable<Row> Rows(int count, int seed, float? amount = null)
    {
        var random = new Random(seed);
        float[] shift = [-0.5f, 0f, 0.5f];
        for (int i = 0; i < count; i++)
        {
            float x = (float)(random.NextDouble() * 4 - 2);
            int c = random.Next(3);
            float code = random.Next(10) switch { 0 => 5, 1 => amount ?? 9, _ => 0 };
            var features = new float[5];
            (features[0], features[1]) = (x, code);
            features[2 + c] = 1;
            yield return new Row { Features = features, Label = code == 5 || (code == 0 && x + shift[c] > 0) };
        }
    }

    private static MemoryFormerTabularOptions Expanded(int epochs, int folds = 3)
    {
        var options = TabularRows.TinyOptions(epochs);
        options.GroupOneHotSlots = true;
        options.AutomaticValueCategories = true;
        options.TargetEncodingFolds = folds;
        return options;
    }

    [Fact]
    public void The_expansion_is_fitted_on_the_training_rows_only_and_the_model_reads_the_feature_column_as_it_is()
    {
        var ml = new MLContext(1);
        var trainRows = Rows(300, 1).ToArray();
        var options = Expanded(10);
        options.ValidationSet = ml.Data.LoadFromEnumerable(Rows(300, 2, amount: 7));   // 7: only in the validation rows
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(ml.Data.LoadFromEnumerable(trainRows));
        var expansion = model.Info.Expansion!;
        var categories = Assert.Single(expansion.ValueCategories);
        Assert.Equal(1, categories.Slot);
        Assert.Equal([0f, 5f, 9f], categories.Values);
        Assert.Equal(2, expansion.TargetEncodings.Length);                          // the one-hot column and the amount's categories
        var labels = trainRows.Select(r => r.Label ? 1.0 : 0.0).ToArray();
        double prior = labels.Average();
        var fives = trainRows.Select((r, i) => (r, i)).Where(p => p.r.Features[1] == 5).Select(p => labels[p.i]).ToArray();
        Assert.Equal((fives.Sum() + 10 * prior) / (fives.Length + 10), expansion.TargetEncodings[1].Means[0][1], 5);
        Assert.Equal(5, model.Info.InputCount);
        Assert.Equal(5 + 3 + 2, model.Info.FeatureCount);
        var metrics = ml.BinaryClassification.Evaluate(model.Transform(ml.Data.LoadFromEnumerable(Rows(300, 3))));
        Assert.True(metrics.Accuracy > 0.8, $"accuracy {metrics.Accuracy}");
    }

    [Fact]
    public void An_expanded_model_saves_its_expansion_and_loads_with_identical_scores()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(Rows(128, 1));
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(Expanded(2)).Fit(train);
        var path = Path.Combine(Path.GetTempPath(), $"mf-tab-expansion-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var loaded = (MemoryFormerTabularTransformer)new MLContext(2).Model.Load(path, out _);
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(model.Info.Expansion),
                System.Text.Json.JsonSerializer.Serialize(loaded.Info.Expansion));
            var before = model.Transform(train).GetColumn<float>("Probability").ToArray();
            var after = loaded.Transform(train).GetColumn<float>("Probability").ToArray();
            Assert.Equal(before, after);
            loaded.Dispose();
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void The_same_seed_gives_the_same_bits_and_without_the_options_nothing_is_added_or_saved()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(Rows(128, 1));
        float[] Probabilities(MemoryFormerTabularOptions o)
        {
            using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(o).Fit(train);
            return model.Transform(train).GetColumn<float>("Probability").ToArray();
        }
        Assert.Equal(Probabilities(Expanded(2)), Probabilities(Expanded(2)));
        var other = Expanded(2);
        other.Seed = 8;                                                             // other folds, other initialisation
        Assert.NotEqual(Probabilities(Expanded(2)), Probabilities(other));

        using var plain = ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(train);
        Assert.Null(plain.Info.Expansion);
        var nothing = TabularRows.TinyOptions(1);
        nothing.AutomaticValueCategories = true;
        nothing.ValueCategoryMinRows = 1000;                                        // no value qualifies: nothing is added
        using var same = ml.BinaryClassification.Trainers.MemoryFormerTabular(nothing).Fit(train);
        Assert.Null(same.Info.Expansion);
        Assert.Equal(plain.Transform(train).GetColumn<float>("Probability").ToArray(),
            same.Transform(train).GetColumn<float>("Probability").ToArray());       // the option's plumbing keeps the bits
        var path = Path.Combine(Path.GetTempPath(), $"mf-tab-plain-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(plain, train.Schema, path);
            using var zip = ZipFile.OpenRead(path);
            var entry = zip.Entries.Single(e => e.FullName.EndsWith("tabular.json", StringComparison.Ordinal));
            using var reader = new StreamReader(entry.Open());
            Assert.DoesNotContain("Expansion", reader.ReadToEnd(), StringComparison.Ordinal);   // files save as before the options
        }
        finally { File.Delete(path); }
    }

    public sealed class ClassRow
    {
        [VectorType(2)] public float[] Features { get; set; } = [];
        public string Label { get; set; } = "";
    }

    [Fact]
    public void A_multiclass_model_encodes_one_slot_per_class_and_loads_with_identical_scores()
    {
        var ml = new MLContext(1);
        var random = new Random(4);
        var rows = Enumerable.Range(0, 120).Select(_ => random.Next(3)).Select(k => new ClassRow
        {
            Features = [(float)random.NextDouble(), k * 10],                        // slot 1: three values, the class itself
            Label = "abc"[k].ToString(),
        }).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.MemoryFormerTabular(Expanded(2)));
        var model = pipeline.Fit(data);
        var tabular = (MemoryFormerTabularTransformer)model.LastTransformer;
        var encoding = Assert.Single(tabular.Info.Expansion!.TargetEncodings);
        Assert.Equal(3, encoding.Means.Length);                                     // P(a), P(b), P(c) per category
        Assert.Equal(2 + 3 + 3, tabular.Info.FeatureCount);
        var path = Path.Combine(Path.GetTempPath(), $"mf-tab-expansion-mc-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var loaded = new MLContext(2).Model.Load(path, out _);
            Assert.Equal(model.Transform(data).GetColumn<float[]>("Score").SelectMany(x => x).ToArray(),
                loaded.Transform(data).GetColumn<float[]>("Score").SelectMany(x => x).ToArray());
            (loaded as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
            tabular.Dispose();
        }
    }

    [Fact]
    public void Bad_options_and_a_feature_column_of_the_wrong_size_are_named()
    {
        var ml = new MLContext(1);
        foreach (var (set, name) in new (Action<MemoryFormerTabularOptions>, string)[]
        {
            (o => o.ValueCategoryMinRows = 0, nameof(MemoryFormerTabularOptions.ValueCategoryMinRows)),
            (o => o.ValueCategoryMaxDistinct = 1, nameof(MemoryFormerTabularOptions.ValueCategoryMaxDistinct)),
            (o => o.TargetEncodingFolds = 1, nameof(MemoryFormerTabularOptions.TargetEncodingFolds)),
            (o => o.TargetEncodingSmoothing = 0, nameof(MemoryFormerTabularOptions.TargetEncodingSmoothing)),
        })
        {
            var options = Expanded(1);
            set(options);
            Assert.Equal(name, Assert.Throws<ArgumentOutOfRangeException>(() => ml.BinaryClassification.Trainers.MemoryFormerTabular(options)).ParamName);
        }
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(Expanded(1)).Fit(ml.Data.LoadFromEnumerable(Rows(64, 1)));
        var narrow = ml.Data.LoadFromEnumerable(new[] { new Narrow { Features = new float[4] } });
        var error = Assert.ThrowsAny<ArgumentException>(() => model.Transform(narrow));
        Assert.Contains("'Features' has 4 slots; the model was trained on 5", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void An_expanded_model_exports_to_ONNX_and_scores_as_the_model_does(int members)
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(Rows(96, 1));
        var options = Expanded(2);
        options.EnsembleSize = members;
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(train);
        Assert.NotNull(model.Info.Expansion);
        using var stream = new MemoryStream();
        ml.Model.ConvertToOnnx(model, train, stream);

        var rows = Rows(40, 4, amount: 7).ToList();                                 // 7: an amount training never saw
        rows[0].Features[1] = float.NaN;                                           // a missing amount
        Array.Clear(rows[1].Features, 2, 3);                                       // no category set
        var features = rows.Select(r => r.Features).ToArray();
        var outputs = Onnx.OnnxRunner.Run(stream.ToArray(),
            Onnx.OnnxRunner.Floats(MemoryFormerOnnxNames.Features, features.SelectMany(f => f).ToArray(), features.Length, 5));
        var probabilities = outputs[MemoryFormerOnnxNames.Probabilities].Values;
        var expected = model.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float>("Probability").ToArray();
        Onnx.OnnxRunner.AssertClose(expected, Enumerable.Range(0, rows.Count).Select(r => probabilities[2 * r + 1]).ToArray(), "Probability");
    }
}
