using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>Transform's batched scoring (many rows per call, windows sorted by length) against the reference path and
/// against PredictionEngine, on short, multi-window, empty and whitespace rows.</summary>
public class MemoryFormerTextClassificationScoringTests
{
    private const float Tolerance = 1e-5f;

    private static readonly string[] Texts =
    [
        "rain today", "", "send money to the bank before the card fee is charged again next month", "   ",
        "hot pizza", "eat pasta and cheese, then pizza, then more pasta with cheese and a little rain", "\t", "card",
        "sunny and warm", "my bank pays", "snow and rain, cold snow and wind, rain and rain and rain all week long", "pizza",
    ];

    private static (MLContext Ml, MemoryFormerTextClassificationTransformer Model, IDataView Data) Trained(int ngramBuckets = 0)
    {
        var ml = new MLContext(seed: 1);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass()));
        var options = ClassificationRows.Options(epochs: 2);
        options.MaxWindowsPerRow = 3;
        options.NgramBuckets = ngramBuckets;
        options.NgramLength = 3;
        var model = ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options)
            .Fit(keys.Transform(ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass())));
        var rows = Enumerable.Range(0, 300).Select(i => new ClassificationRows.TextRow { Text = Texts[i % Texts.Length] + (i % 5 == 0 ? " " + i : ""), Label = "food" });
        return (ml, model, keys.Transform(ml.Data.LoadFromEnumerable(rows)));
    }

    private static float[][] Scores(IDataView scored) => scored.GetColumn<float[]>("Score").ToArray();

    private static void AssertClose(float[][] expected, float[][] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int r = 0; r < expected.Length; r++)
            for (int c = 0; c < expected[r].Length; c++)
                Assert.True(Math.Abs(expected[r][c] - actual[r][c]) <= Tolerance, $"row {r}, class {c}: {expected[r][c]} vs {actual[r][c]}");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(64)]
    public void Transform_scores_as_the_reference_path_and_PredictionEngine_gives_each_row_the_same_bits(int ngramBuckets)
    {
        var (ml, model, data) = Trained(ngramBuckets);
        using var _ = model;
        Assert.True(model.Model.MaxWindowsPerRow > 1 && Texts.Any(t => t.Length > 2 * model.Model.MaxTokensPerRow), "some rows span several windows");
        var batched = Scores(model.Transform(data));
        model.Model.UseReferenceScoring = true;
        var reference = Scores(model.Transform(data));
        model.Model.UseReferenceScoring = false;
        AssertClose(reference, batched);

        // One row a call against 300 rows a call: the fused head computes each window's logits on their own, so the
        // batch a row shares its call with cannot move its score, not even by an ulp.
        using var engine = ml.Model.CreatePredictionEngine<ClassificationRows.TextRow, ClassificationRows.Prediction>(model,
            new PredictionEngineOptions { OwnsTransformer = false });
        var texts = data.GetColumn<string>("Text").ToArray();
        var alone = texts.Select(t => engine.Predict(new ClassificationRows.TextRow { Text = t, Label = "food" }).Score).ToArray();
        for (int r = 0; r < texts.Length; r++)
            Assert.True(batched[r].SequenceEqual(alone[r]), $"row {r}: [{string.Join(", ", batched[r])}] in the batch, [{string.Join(", ", alone[r])}] alone");
    }

    [Fact]
    public void Transform_reads_many_rows_per_model_call_and_gives_the_same_scores_every_pass()
    {
        var (_, model, data) = Trained();
        using var _ = model;
        var profile = model.Model.Profile = new Microsoft.ML.MemoryFormer.Models.ScoringProfile();
        var first = Scores(model.Transform(data));
        Assert.Equal(300, first.Length);
        Assert.Equal(2, profile.Calls);                                           // 256 + 44 rows, not ten calls of the batch size
        Assert.Equal(first, Scores(model.Transform(data)));
    }
}
