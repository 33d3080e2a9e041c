using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>The <see cref="MemoryFormerTextClassificationOptions.ScoringPrecision"/> option: training is unchanged, the
/// model scores with bf16 table copies, saves the choice and loads scoring the same way; the transformer's
/// <c>UseInferencePrecision</c> still switches it either way.</summary>
public class MemoryFormerTextClassificationScoringPrecisionTests
{
    private static MemoryFormerTextClassificationTransformer Train(MLContext ml, IDataView data, InferencePrecision precision)
    {
        var options = ClassificationRows.Options(epochs: 3);
        options.ScoringPrecision = precision;
        return ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(data);
    }

    private static float[] Scores(ITransformer model, IDataView data) => model.Transform(data).GetColumn<float>("Score").ToArray();

    [Fact]
    public void A_model_trained_for_bf16_scoring_scores_saves_and_loads_with_bf16_tables()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        using var fp32 = Train(ml, data, InferencePrecision.Float32);
        using var bf16 = Train(ml, data, InferencePrecision.BFloat16);
        Assert.Equal(fp32.Model.Network.parameters().Select(p => p.data<float>().ToArray()),
            bf16.Model.Network.parameters().Select(p => p.data<float>().ToArray()));            // training does not read it
        Assert.Equal((InferencePrecision.Float32, InferencePrecision.Float32), (fp32.Model.ScoringPrecision, fp32.InferencePrecision));
        Assert.Equal((InferencePrecision.BFloat16, InferencePrecision.BFloat16), (bf16.Model.ScoringPrecision, bf16.InferencePrecision));
        var expected = Scores(bf16, data);
        var full = Scores(fp32, data);
        Assert.NotEqual(full, expected);                                                      // the tables are rounded
        fp32.UseInferencePrecision(InferencePrecision.BFloat16);
        Assert.Equal(expected, Scores(fp32, data));                                           // the same copies as the opt-in
        fp32.UseInferencePrecision(InferencePrecision.Float32);

        using var stream = new MemoryStream();
        ml.Model.Save(bf16, data.Schema, stream);
        stream.Position = 0;
        using var loaded = (MemoryFormerTextClassificationTransformer)ml.Model.Load(stream, out _);
        Assert.Equal((InferencePrecision.BFloat16, InferencePrecision.BFloat16), (loaded.Model.ScoringPrecision, loaded.InferencePrecision));
        Assert.Equal(expected, Scores(loaded, data));
        loaded.UseInferencePrecision(InferencePrecision.Float32);                             // the user can still switch back
        Assert.Equal(full, Scores(loaded, data));
        Assert.Equal(InferencePrecision.BFloat16, loaded.Model.ScoringPrecision);            // what is saved stays
    }

    [Fact]
    public void Int8_scoring_is_rejected()
    {
        var options = ClassificationRows.Options();
        options.ScoringPrecision = InferencePrecision.Int8;
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(seed: 1).BinaryClassification.Trainers.MemoryFormerTextClassification(options));
        Assert.Contains(nameof(MemoryFormerTextClassificationOptions.ScoringPrecision), error.Message);
    }
}
