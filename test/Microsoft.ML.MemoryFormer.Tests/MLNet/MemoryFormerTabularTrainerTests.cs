using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerTabularTrainerTests
{
    [Fact]
    public void An_undefined_moment_precision_is_refused_by_name()
    {
        var options = TabularRows.TinyOptions();
        options.TableMomentPrecision = (MomentPrecision)5;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(1).Regression.Trainers.MemoryFormerTabular(options));
        Assert.Equal(nameof(options.TableMomentPrecision), e.ParamName);
    }

    [Theory]
    [InlineData(MomentPrecision.Float32)]
    [InlineData(MomentPrecision.BFloat16)]
    public void Regression_learns_a_linear_target_and_evaluates_with_MLNet(MomentPrecision moments)
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(256, 1));
        var test = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 2));
        var options = TabularRows.TinyOptions();
        options.TableMomentPrecision = moments;
        using var model = ml.Regression.Trainers.MemoryFormerTabular(options).Fit(train);
        var metrics = ml.Regression.Evaluate(model.Transform(test));
        Assert.True(metrics.RSquared > 0.9, $"R² = {metrics.RSquared}");
        var score = model.GetOutputSchema(train.Schema)["Score"];
        Assert.Equal(NumberDataViewType.Single, score.Type);
        Assert.Equal("Regression", Text(score, "ScoreColumnKind"));
    }

    [Fact]
    public void Binary_uses_the_missing_value_embedding_and_appends_MLNet_columns()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(256, 3));
        var test = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(200, 4));
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions()).Fit(train);
        var scored = model.Transform(test);
        var metrics = ml.BinaryClassification.Evaluate(scored);
        Assert.True(metrics.Accuracy > 0.9, $"accuracy = {metrics.Accuracy}");
        var nanRows = TabularRows.BinaryRows(200, 4).Select((r, i) => (r, i)).Where(p => float.IsNaN(p.r.Features[2])).Select(p => p.i).ToHashSet();
        var predicted = scored.GetColumn<bool>("PredictedLabel").Where((_, i) => nanRows.Contains(i)).ToArray();
        Assert.True(predicted.Count(p => p) >= predicted.Length * 0.8, $"{predicted.Count(p => p)}/{predicted.Length} NaN rows predicted true");
        Assert.Equal(["Score", "Probability", "PredictedLabel"], scored.Schema.Skip(2).Select(c => c.Name));
        Assert.Equal(BooleanDataViewType.Instance, scored.Schema["PredictedLabel"].Type);
        Assert.Equal("BinaryClassification", Text(scored.Schema["Score"], "ScoreColumnKind"));
        Assert.Equal("Probability", Text(scored.Schema["Probability"], "ScoreValueKind"));
    }

    [Fact]
    public void MLNet_cross_validation_fits_and_scores_one_model_per_fold()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(300, 5));
        var folds = ml.BinaryClassification.CrossValidate(data, ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(15)),
            numberOfFolds: 3);
        try
        {
            Assert.Equal([0, 1, 2], folds.Select(f => f.Fold));
            Assert.All(folds, f => Assert.True(f.Metrics.Accuracy > 0.8 && f.Metrics.AreaUnderRocCurve > 0.85,
                $"fold {f.Fold}: accuracy {f.Metrics.Accuracy:F3}, AUC {f.Metrics.AreaUnderRocCurve:F3}"));
            Assert.Equal(300, folds.Sum(f => f.ScoredHoldOutSet.GetColumn<float>("Probability").Count()));   // every row held out once
            Assert.Equal(3, folds.Select(f => f.Model).Distinct().Count());
        }
        finally
        {
            foreach (var fold in folds) (fold.Model as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void Multiclass_predicts_keys_with_the_label_names_and_evaluates()
    {
        var ml = new MLContext(1);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions()))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel"));
        var model = pipeline.Fit(ml.Data.LoadFromEnumerable(TabularRows.MulticlassRows(192, 5)));
        var scored = model.Transform(ml.Data.LoadFromEnumerable(TabularRows.MulticlassRows(100, 6)));
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.True(metrics.MacroAccuracy > 0.85, $"macro accuracy = {metrics.MacroAccuracy}");
        var score = scored.Schema["Score"];
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 3), score.Type);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        score.GetSlotNames(ref slots);
        Assert.Equal(new[] { "high", "low", "mid" }, slots.DenseValues().Select(s => s.ToString()).OrderBy(s => s).ToArray());
        var labels = TabularRows.MulticlassRows(100, 6).Select(r => r.Label).ToArray();
        var names = scored.GetColumn<string>("PredictedName").ToArray();
        Assert.True(labels.Zip(names).Count(p => p.First == p.Second) >= 85);
    }

    [Fact]
    public void Saved_model_loads_in_a_fresh_context_with_identical_scores()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 1));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 2)).Fit(train);
        var path = Path.Combine(Path.GetTempPath(), $"mf-tab-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext(2);
            fresh.ComponentCatalog.RegisterMemoryFormer();
            var loaded = fresh.Model.Load(path, out _);
            var before = model.Transform(train).GetColumn<float>("Score").ToArray();
            var after = loaded.Transform(fresh.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 1))).GetColumn<float>("Score").ToArray();
            Assert.Equal(before, after);
            var engine = fresh.Model.CreatePredictionEngine<TabularRows.Regression, ScoreRow>(loaded);
            // One row a call gives the bits the batch of 64 gave it.
            Assert.Equal(before[0], engine.Predict(TabularRows.RegressionRows(1, 1).Single()).Score);
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [InlineData(TabularNumericEmbedding.Linear, false)]
    [InlineData(TabularNumericEmbedding.Linear, true)]
    [InlineData(TabularNumericEmbedding.PiecewiseLinear, false)]
    [InlineData(TabularNumericEmbedding.Periodic, false)]
    public void A_row_scored_alone_gets_the_bits_it_gets_in_a_batch(TabularNumericEmbedding embedding, bool groups)
    {
        // The head's linear layer and the embeddings' per-slot projections compute each row on its own at inference
        // (libtorch's GEMMs round by batch shape: before, 10-17 % of these rows moved by an ulp).
        var ml = new MLContext(1);
        var options = TabularRows.TinyOptions(epochs: 2);
        options.NumericEmbedding = embedding;
        options.PeriodicFrequencies = embedding == TabularNumericEmbedding.Periodic ? 4 : options.PeriodicFrequencies;
        options.GroupOneHotSlots = groups;
        var rows = TabularRows.RegressionRows(200, 1).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        using var model = ml.Regression.Trainers.MemoryFormerTabular(options).Fit(data);
        var batched = model.Transform(data).GetColumn<float>("Score").ToArray();
        var engine = ml.Model.CreatePredictionEngine<TabularRows.Regression, ScoreRow>(model);
        for (int r = 0; r < rows.Length; r++)
            Assert.Equal(batched[r], engine.Predict(rows[r]).Score);

        // The default scoring runs the blocks in the fused inference encoder; the torch modules (the reference) agree.
        Assert.True(model.Model.TakesFusedForward);
        foreach (var member in model.Ensemble.Members) member.UseFusedScoring = false;
        var reference = model.Transform(data).GetColumn<float>("Score").ToArray();
        for (int r = 0; r < rows.Length; r++)
            Assert.True(Math.Abs(reference[r] - batched[r]) <= 1e-4f * (1 + Math.Abs(reference[r])), $"row {r}: {reference[r]} (torch) vs {batched[r]} (fused)");
    }

    [Fact]
    public void Fused_scoring_of_an_ensemble_classifier_agrees_with_the_torch_modules()
    {
        var ml = new MLContext(3);
        var options = TabularRows.TinyOptions(epochs: 3);
        options.EnsembleSize = 2;
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.MemoryFormerTabular(options));
        var model = pipeline.Fit(ml.Data.LoadFromEnumerable(TabularRows.MulticlassRows(192, 5)));
        var test = ml.Data.LoadFromEnumerable(TabularRows.MulticlassRows(100, 6));
        var fused = model.Transform(test).GetColumn<float[]>("Score").ToArray();
        var tabular = model.LastTransformer;
        Assert.True(tabular.Model.TakesFusedForward);
        foreach (var member in tabular.Ensemble.Members) member.UseFusedScoring = false;
        var reference = model.Transform(test).GetColumn<float[]>("Score").ToArray();
        for (int r = 0; r < fused.Length; r++)
            for (int c = 0; c < fused[r].Length; c++)
                Assert.True(Math.Abs(reference[r][c] - fused[r][c]) <= 1e-5f, $"row {r}, class {c}: {reference[r][c]} vs {fused[r][c]}");
        tabular.Dispose();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(700)]
    public void Fused_scoring_agrees_with_the_torch_modules_from_one_feature_to_hundreds_with_missing_values(int features)
    {
        // Windows of 2 and 701 tokens through the fused encoder; a tenth of the values missing (their own embeddings).
        var ml = new MLContext(1);
        var random = new Random(1);
        var rows = Enumerable.Range(0, 300).Select(_ =>
        {
            var x = Enumerable.Range(0, features).Select(_ => random.NextDouble() < 0.1 ? float.NaN : (float)(random.NextDouble() * 4 - 2)).ToArray();
            return new WideRow { Features = x, Label = float.IsNaN(x[0]) ? 1f : 2 * x[0] };
        }).ToArray();
        var schema = SchemaDefinition.Create(typeof(WideRow));
        schema[nameof(WideRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, features);
        var data = ml.Data.LoadFromEnumerable(rows, schema);
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 1)).Fit(data);
        Assert.True(model.Model.TakesFusedForward);
        var fused = model.Transform(data).GetColumn<float>("Score").ToArray();
        foreach (var member in model.Ensemble.Members) member.UseFusedScoring = false;
        var reference = model.Transform(data).GetColumn<float>("Score").ToArray();
        for (int r = 0; r < rows.Length; r++)
            Assert.True(Math.Abs(reference[r] - fused[r]) <= 1e-4f * (1 + Math.Abs(reference[r])), $"row {r}: {reference[r]} (torch) vs {fused[r]} (fused)");
    }

    private sealed class WideRow
    {
        public float[] Features { get; set; } = [];
        public float Label { get; set; }
    }

    private sealed class ScoreRow
    {
        public float Score { get; set; }
    }

    private static string Text(DataViewSchema.Column column, string annotation)
    {
        ReadOnlyMemory<char> value = default;
        column.Annotations.GetValue(annotation, ref value);
        return value.ToString();
    }
}
