using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>Key labels whose values are numbers keep them on PredictedLabel, and the estimators' schemas say so.</summary>
public class PredictionColumnsTests
{
    private sealed class NumberedRow
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
        public float Label { get; set; }
    }

    private sealed class NumberedText
    {
        public string Text { get; set; } = "";
        public int Label { get; set; }
    }

    private static IEnumerable<NumberedRow> Numbered(int count, int seed) =>
        TabularRows.MulticlassRows(count, seed).Select(r => new NumberedRow
        {
            Features = r.Features, Label = r.Label switch { "low" => 1.5f, "mid" => 2.5f, _ => 7f },
        });

    [Fact]
    public void A_tabular_key_label_of_numbers_maps_back_to_its_numbers_and_the_estimator_schema_matches()
    {
        var ml = new MLContext(1);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Numbered(96, 5)))
            .Transform(ml.Data.LoadFromEnumerable(Numbered(96, 5)));
        var trainer = ml.MulticlassClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 3));
        var promised = trainer.GetOutputSchema(MLNetInternals.ShapeOf(keyed.Schema));
        using var model = trainer.Fit(keyed);
        var scored = model.Transform(keyed);

        AssertShapeMatches(promised, scored.Schema, "PredictedLabel");
        AssertShapeMatches(promised, scored.Schema, "Score");
        var values = ml.Transforms.Conversion.MapKeyToValue("PredictedValue", "PredictedLabel").Fit(scored).Transform(scored);
        Assert.Equal(NumberDataViewType.Single, values.Schema["PredictedValue"].Type);
        Assert.All(values.GetColumn<float>("PredictedValue"), v => Assert.Contains(v, new[] { 1.5f, 2.5f, 7f }));
    }

    [Fact]
    public void A_text_key_label_of_integers_keeps_them_through_save_and_load()
    {
        var ml = new MLContext(1);
        var rows = ClassificationRows.Multiclass().Select(r => new NumberedText { Text = r.Text, Label = r.Label.Length }).ToArray();
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows))
            .Transform(ml.Data.LoadFromEnumerable(rows));
        var trainer = ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 2));
        var promised = trainer.GetOutputSchema(MLNetInternals.ShapeOf(keyed.Schema));
        using var model = trainer.Fit(keyed);
        AssertShapeMatches(promised, model.Transform(keyed).Schema, "PredictedLabel");

        using var stream = new MemoryStream();
        ml.Model.Save(model, keyed.Schema, stream);
        stream.Position = 0;
        var fresh = new MLContext(2);
        fresh.ComponentCatalog.RegisterMemoryFormer();
        var loaded = fresh.Model.Load(stream, out _);
        var scored = loaded.Transform(keyed);
        var values = fresh.Transforms.Conversion.MapKeyToValue("PredictedValue", "PredictedLabel").Fit(scored).Transform(scored);
        Assert.Equal(NumberDataViewType.Int32, values.Schema["PredictedValue"].Type);
        Assert.All(values.GetColumn<int>("PredictedValue"), v => Assert.Contains(v, rows.Select(r => r.Label)));
        (loaded as IDisposable)?.Dispose();
    }

    /// <summary>The promised column has the real column's kind, item type, key-ness and annotation types.</summary>
    private static void AssertShapeMatches(SchemaShape promised, DataViewSchema real, string name)
    {
        var shape = promised.Single(c => c.Name == name);
        var actual = MLNetInternals.ShapeOf(real).Single(c => c.Name == name);
        Assert.Equal(actual.Kind, shape.Kind);
        Assert.Equal(actual.ItemType, shape.ItemType);
        Assert.Equal(actual.IsKey, shape.IsKey);
        Assert.Equal(actual.Annotations.Select(a => $"{a.Name}: {a.Kind} of {a.ItemType}").Order(),
            shape.Annotations.Select(a => $"{a.Name}: {a.Kind} of {a.ItemType}").Order());
    }
}
