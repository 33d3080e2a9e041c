using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerTextClassificationTrainerTests
{
    private static (MLContext Ml, IDataView Data, ITransformer Model) FitMulticlass()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass());
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options()));
        return (ml, data, pipeline.Fit(data));
    }

    [Fact]
    public void Multiclass_fits_evaluates_like_a_hand_count_and_predicts_names()
    {
        var (ml, data, model) = FitMulticlass();
        var scored = model.Transform(data);
        var metrics = ml.MulticlassClassification.Evaluate(scored);

        var labels = scored.GetColumn<uint>("Label").ToArray();
        var predicted = scored.GetColumn<uint>("PredictedLabel").ToArray();
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        double accuracy = labels.Zip(predicted).Count(p => p.First == p.Second) / (double)labels.Length;
        double logLoss = labels.Select((l, i) => -Math.Log(Math.Max(scores[i][l - 1], 1e-15))).Average();
        double macro = labels.Distinct().Average(c => labels.Select((l, i) => (l, i)).Where(p => p.l == c)
            .Average(p => predicted[p.i] == c ? 1.0 : 0.0));
        Assert.Equal(accuracy, metrics.MicroAccuracy, 6);
        Assert.Equal(macro, metrics.MacroAccuracy, 6);
        Assert.Equal(logLoss, metrics.LogLoss, 4);
        Assert.True(accuracy >= 0.9, $"training accuracy {accuracy}");
        Assert.All(scores, s => Assert.Equal(1f, s.Sum(), 4));

        var names = ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel").Fit(scored).Transform(scored)
            .GetColumn<string>("PredictedName").ToArray();
        Assert.Equal("weather", names[0]);
        Assert.Equal("food", names[^1]);
    }

    [Fact]
    public void Multiclass_output_columns_carry_the_annotations_evaluators_need()
    {
        var (_, data, model) = FitMulticlass();
        var schema = model.GetOutputSchema(data.Schema);

        var score = schema["Score"];
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 3), score.Type);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        score.Annotations.GetValue("SlotNames", ref slots);
        Assert.Equal(["weather", "money", "food"], slots.DenseValues().Select(s => s.ToString()));
        Assert.Equal("MulticlassClassification", Text(score, "ScoreColumnKind"));
        Assert.Equal("Score", Text(score, "ScoreValueKind"));

        var predicted = schema["PredictedLabel"];
        Assert.Equal(new KeyDataViewType(typeof(uint), 3), predicted.Type);
        VBuffer<ReadOnlyMemory<char>> keys = default;
        predicted.Annotations.GetValue("KeyValues", ref keys);
        Assert.Equal(["weather", "money", "food"], keys.DenseValues().Select(s => s.ToString()));
    }

    [Fact]
    public void Binary_fits_and_evaluates_with_score_probability_and_bool_prediction()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options()).Fit(data);
        var scored = model.Transform(data);

        var schema = scored.Schema;
        Assert.Equal(NumberDataViewType.Single, schema["Score"].Type);
        Assert.Equal(NumberDataViewType.Single, schema["Probability"].Type);
        Assert.Equal(BooleanDataViewType.Instance, schema["PredictedLabel"].Type);
        Assert.Equal("BinaryClassification", Text(schema["Score"], "ScoreColumnKind"));

        var metrics = ml.BinaryClassification.Evaluate(scored);
        var labels = scored.GetColumn<bool>("Label").ToArray();
        var predicted = scored.GetColumn<bool>("PredictedLabel").ToArray();
        var probability = scored.GetColumn<float>("Probability").ToArray();
        var score = scored.GetColumn<float>("Score").ToArray();
        Assert.Equal(labels.Zip(predicted).Count(p => p.First == p.Second) / (double)labels.Length, metrics.Accuracy, 6);
        Assert.True(metrics.Accuracy >= 0.9, $"accuracy {metrics.Accuracy}");
        Assert.All(score.Zip(probability), p => Assert.Equal(1 / (1 + Math.Exp(-p.First)), p.Second, 4));
        Assert.All(score.Zip(predicted), p => Assert.Equal(p.First > 0, p.Second));
    }

    [Fact]
    public void Saved_model_loads_in_a_fresh_context_and_scores_identically()
    {
        var (ml, data, model) = FitMulticlass();
        var expected = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;

        var fresh = new MLContext();
        fresh.ComponentCatalog.RegisterMemoryFormer();
        var loaded = fresh.Model.Load(stream, out var schema);
        var rows = ClassificationRows.Multiclass();
        Assert.Equal(expected, loaded.Transform(fresh.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score").ToArray());

        var engine = fresh.Model.CreatePredictionEngine<ClassificationRows.TextRow, ClassificationRows.Prediction>(loaded);
        // one unpadded row vs the same row inside a padded batch: equal up to float summation order
        Assert.All(expected[4].Zip(engine.Predict(rows[4]).Score), p => Assert.Equal(p.First, p.Second, 5));
        Assert.NotNull(schema.GetColumnOrNull("Text"));
    }

    [Fact]
    public void Empty_text_and_sentence_pairs_score_without_crashing()
    {
        var ml = new MLContext(seed: 1);
        var rows = ClassificationRows.Binary().Select(r => new { r.Text, Second = r.Text.ToUpperInvariant(), r.Label }).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        var options = ClassificationRows.Options(epochs: 2);
        options.SecondTextColumnName = "Second";
        var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(data);

        var empty = ml.Data.LoadFromEnumerable(new[] { new { Text = "", Second = "", Label = false } });
        var probability = model.Transform(empty).GetColumn<float>("Probability").Single();
        Assert.InRange(probability, 0f, 1f);
    }

    private static string Text(DataViewSchema.Column column, string annotation)
    {
        ReadOnlyMemory<char> value = default;
        column.Annotations.GetValue(annotation, ref value);
        return value.ToString();
    }
}
