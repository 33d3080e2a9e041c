using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.Onnx;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

// Inside the namespace, so that ml.Model.ConvertToOnnx binds to this library's overloads: from a namespace inside
// Microsoft.ML, C# finds ML.NET's OnnxExportExtensions (namespace Microsoft.ML) before the file's own usings.
using Microsoft.ML.MemoryFormer.Onnx;

/// <summary>
/// ML.NET's own <c>ConvertToOnnx</c> (package Microsoft.ML.OnnxConverter) on a fitted pipeline that holds a MemoryFormer
/// model: it stops with an error that names the route that works, instead of writing a file that returns its inputs,
/// and that route (ML.NET's converter for the steps before the model, this library's for the model) scores as the
/// pipeline does.
/// </summary>
public class OnnxConverterPipelineTests
{
    private sealed class Columns
    {
        public float Strong { get; set; }
        public float Weak { get; set; }
        public float Noise { get; set; }
        public float Label { get; set; }
    }

    private static IEnumerable<Columns> Rows(int count, int seed) => TabularRows.Points(count, seed).Select(x => new Columns
    {
        Strong = x[0] * 50, Weak = x[1], Noise = x[2] + 10, Label = 10 + 0.06f * x[0] * 50 - x[1],
    });

    private static readonly string[] FeatureNames = ["Strong", "Weak", "Noise"];

    [Fact]
    public void MLNet_converter_stops_at_a_tabular_model_and_the_named_route_scores_as_the_pipeline()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Rows(200, 1));
        using var chain = ml.Transforms.Concatenate("Features", FeatureNames)
            .Append(ml.Transforms.NormalizeMinMax("Features"))
            .Append(ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(3))).Fit(data);

        using var whole = new MemoryStream();
        var error = Assert.Throws<NotSupportedException>(() => OnnxExportExtensions.ConvertToOnnx(ml.Model, chain, data, whole));
        Assert.Contains("transformer.ExportToOnnx(path or stream)", error.Message);
        Assert.Contains("MemoryFormerOnnxExtensions.ConvertToOnnx(mlContext.Model, transformer, data, stream)", error.Message);
        Assert.Equal(0, whole.Length);                                         // nothing half-written

        // The route the message names: ML.NET converts the steps before the model, this library the model.
        var steps = new TransformerChain<ITransformer>(chain.Take(chain.Count() - 1).ToArray());
        using var before = new MemoryStream();
        OnnxExportExtensions.ConvertToOnnx(ml.Model, steps, data, before);
        using var model = new MemoryStream();
        ml.Model.ConvertToOnnx(chain.LastTransformer, steps.Transform(data), model);

        var rows = Rows(24, 2).ToArray();
        var inputs = FeatureNames.Append("Label").Select(name => OnnxRunner.Floats(name,                // every input column of the data
            rows.Select(r => (float)typeof(Columns).GetProperty(name)!.GetValue(r)!).ToArray(), rows.Length, 1)).ToArray();
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(before.ToArray());
        using var results = session.Run(inputs, ["Features.output"]);
        var features = results[0].AsTensor<float>();
        Assert.Equal([rows.Length, FeatureNames.Length], features.Dimensions.ToArray());
        var scores = OnnxRunner.Run(model.ToArray(), OnnxRunner.Floats(MemoryFormerOnnxNames.Features, features.ToArray(), rows.Length, FeatureNames.Length));
        var expected = chain.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float>("Score").ToArray();
        OnnxRunner.AssertClose(expected, scores[MemoryFormerOnnxNames.Score].Values, "Score");
    }

    [Fact]
    public void MLNet_converter_stops_at_a_text_classifier_inside_key_mappings()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass());
        using var chain = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 1)))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel")).Fit(data);

        using var stream = new MemoryStream();
        var error = Assert.Throws<NotSupportedException>(() => OnnxExportExtensions.ConvertToOnnx(ml.Model, chain, data, stream));
        Assert.Contains("TokenizeForOnnx", error.Message);
        Assert.Equal(0, stream.Length);
    }
}
