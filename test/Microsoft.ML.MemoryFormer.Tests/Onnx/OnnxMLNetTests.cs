using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.MLNet;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Tests.Onnx;

// Inside the namespace, so that ml.Model.ConvertToOnnx binds to this library's overloads before ML.NET's (OnnxConverterPipelineTests).
using Microsoft.ML.MemoryFormer.Onnx;

/// <summary>
/// Trained ML.NET transformers exported with <c>mlContext.Model.ConvertToOnnx</c> score the same as the transformers
/// themselves, in ONNX Runtime directly and through <c>ApplyOnnxModel</c> in an ML.NET pipeline.
/// </summary>
public class OnnxMLNetTests
{
    private static (MLContext Ml, IDataView Data, MemoryFormerTextClassificationTransformer Model) FitMulticlass()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass()))
            .Transform(ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass()));
        var model = ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 3)).Fit(data);
        return (ml, data, model);
    }

    private static byte[] Export(Action<Stream> write)
    {
        using var stream = new MemoryStream();
        write(stream);
        return stream.ToArray();
    }

    [Fact]
    public void Exported_text_classifier_gives_the_transformers_scores_on_one_padded_batch()
    {
        var (ml, data, model) = FitMulticlass();
        using var _ = model;
        var onnx = Export(s => ml.Model.ConvertToOnnx(model, data, s));
        var texts = data.GetColumn<string>("Text").ToArray();
        var expected = model.Transform(data).GetColumn<float[]>("Score").SelectMany(s => s).ToArray();

        var encoder = new TextPairEncoder(model.Model.Tokenizer, model.Model.MaxTokensPerRow);
        var rows = texts.Select(t => encoder.Encode(t)).ToArray();
        int t = rows.Max(r => r.Length);
        Assert.True(rows.Min(r => r.Length) < t, "the batch must mix lengths so that padding is exercised");
        var ids = rows.SelectMany(r => Enumerable.Range(0, t).Select(j => j < r.Length ? (long)r[j] : encoder.PadId)).ToArray();
        var mask = rows.SelectMany(r => Enumerable.Range(0, t).Select(j => j < r.Length ? 1L : 0L)).ToArray();
        var outputs = OnnxRunner.Run(onnx, OnnxRunner.Longs(MemoryFormerOnnxNames.InputIds, ids, rows.Length, t),
            OnnxRunner.Longs(MemoryFormerOnnxNames.AttentionMask, mask, rows.Length, t));

        OnnxRunner.AssertClose(expected, outputs[MemoryFormerOnnxNames.Probabilities].Values, "probabilities");
    }

    [Fact]
    public void Exported_text_classifier_scores_through_ApplyOnnxModel_and_evaluates_to_the_same_metrics()
    {
        var (ml, data, model) = FitMulticlass();
        using var _ = model;
        var path = Path.Combine(Path.GetTempPath(), $"mf-onnx-{Guid.NewGuid():N}.onnx");
        try
        {
            using (var file = File.Create(path))
                ml.Model.ConvertToOnnx(model, data, file);

            var pipeline = ml.Transforms.TokenizeForOnnx(path, "Text")
                .Append(ml.Transforms.ApplyOnnxModel([MemoryFormerOnnxNames.Probabilities],
                    [MemoryFormerOnnxNames.InputIds, MemoryFormerOnnxNames.AttentionMask], path,
                    MemoryFormerOnnxExtensions.TextInputShapes(path), gpuDeviceId: null, fallbackToCpu: false, recursionLimit: 100))
                .Append(ml.Transforms.CopyColumns("Score", MemoryFormerOnnxNames.Probabilities));
            var onnxModel = pipeline.Fit(data);
            var scored = onnxModel.Transform(data);

            var viaOnnx = ml.MulticlassClassification.Evaluate(scored, predictedLabelColumnName: "Score");
            var viaTorch = ml.MulticlassClassification.Evaluate(model.Transform(data));
            Assert.Equal(viaTorch.MicroAccuracy, viaOnnx.MicroAccuracy, 6);
            Assert.Equal(viaTorch.MacroAccuracy, viaOnnx.MacroAccuracy, 6);
            Assert.Equal(viaTorch.LogLoss, viaOnnx.LogLoss, 4);
            OnnxRunner.AssertClose(model.Transform(data).GetColumn<float[]>("Score").SelectMany(s => s).ToArray(),
                scored.GetColumn<float[]>("Score").SelectMany(s => s).ToArray(), "Score");
            (onnxModel as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TokenizeForOnnx_refuses_a_model_without_tokenizer_metadata()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(16, 4));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 1)).Fit(data);
        var path = Path.Combine(Path.GetTempPath(), $"mf-onnx-{Guid.NewGuid():N}.onnx");
        try
        {
            model.ExportToOnnx(path);
            var e = Assert.Throws<ArgumentException>(() => ml.Transforms.TokenizeForOnnx(path));
            Assert.Contains(MemoryFormerOnnxNames.TokenizerKey, e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Exported_tabular_binary_model_matches_with_missing_values_and_the_scaler_in_the_graph()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(64, 3));
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 2)).Fit(data);
        var onnx = Export(s => ml.Model.ConvertToOnnx(model, data, s));

        var features = data.GetColumn<float[]>("Features").ToArray();
        Assert.Contains(features, f => f.Any(float.IsNaN));
        var scored = model.Transform(data);
        var outputs = OnnxRunner.Run(onnx, OnnxRunner.Floats(MemoryFormerOnnxNames.Features, features.SelectMany(f => f).ToArray(), features.Length, 4));

        var probabilities = outputs[MemoryFormerOnnxNames.Probabilities].Values;
        var logits = outputs[MemoryFormerOnnxNames.Logits].Values;
        OnnxRunner.AssertClose(scored.GetColumn<float>("Probability").ToArray(),
            Enumerable.Range(0, features.Length).Select(r => probabilities[2 * r + 1]).ToArray(), "Probability");
        OnnxRunner.AssertClose(scored.GetColumn<float>("Score").ToArray(),
            Enumerable.Range(0, features.Length).Select(r => logits[2 * r + 1] - logits[2 * r]).ToArray(), "Score");
    }

    [Fact]
    public void Exported_tabular_regression_model_predicts_in_label_units()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 4));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 2)).Fit(data);
        var onnx = Export(s => model.ExportToOnnx(s));

        var features = data.GetColumn<float[]>("Features").ToArray();
        var outputs = OnnxRunner.Run(onnx, OnnxRunner.Floats(MemoryFormerOnnxNames.Features, features.SelectMany(f => f).ToArray(), features.Length, 4));

        var (score, shape) = outputs[MemoryFormerOnnxNames.Score];
        Assert.Equal([features.Length, 1], shape);
        OnnxRunner.AssertClose(model.Transform(data).GetColumn<float>("Score").ToArray(), score, "Score");
    }

    [Fact]
    public void Exported_language_model_transformer_gives_the_same_logits_and_describes_its_tokenizer()
    {
        var ml = new MLContext(seed: 7);
        using var lm = ml.Text.MemoryFormer(LanguageModeling.LanguageModelData.NanoOptions(steps: 2))
            .Fit(ml.Data.LoadFromEnumerable(LanguageModeling.LanguageModelData.Corpus));
        var onnx = Export(s => ml.Model.ConvertToOnnx(lm, s));
        long[] ids = [.. lm.Tokenizer.Encode("the cat sat").Select(i => (long)i)];

        float[] expected;
        using (TorchSharp.torch.no_grad())
            expected = lm.Model.forward(TorchSharp.torch.tensor(ids, [1, ids.Length])).data<float>().ToArray();
        var outputs = OnnxRunner.Run(onnx, OnnxRunner.Longs(MemoryFormerOnnxNames.InputIds, ids, 1, ids.Length),
            OnnxRunner.Longs(MemoryFormerOnnxNames.AttentionMask, [.. ids.Select(_ => 1L)], 1, ids.Length));
        OnnxRunner.AssertClose(expected, outputs[MemoryFormerOnnxNames.Logits].Values, "logits");

        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(onnx);
        var description = session.ModelMetadata.CustomMetadataMap[MemoryFormerOnnxNames.TokenizerKey];
        Assert.Equal(lm.Tokenizer.Describe().ToJson(), description);
    }

    [Fact]
    public void ConvertToOnnx_names_the_missing_column_when_the_data_cannot_be_scored()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(32, 4));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 1)).Fit(data);
        var other = ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass());
        var e = Assert.ThrowsAny<ArgumentException>(() => ml.Model.ConvertToOnnx(model, other, new MemoryStream()));
        Assert.Contains("Features", e.Message, StringComparison.Ordinal);
    }
}
