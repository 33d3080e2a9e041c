using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerTextClassificationBadInputTests
{
    private static readonly MLContext Ml = new(seed: 1);

    private static Exception FitMulticlass(IDataView data, bool mapLabel = true)
    {
        IEstimator<ITransformer> trainer = Ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 1));
        if (mapLabel) trainer = Ml.Transforms.Conversion.MapValueToKey("Label").Append(trainer);
        return Assert.ThrowsAny<Exception>(() => trainer.Fit(data));
    }

    [Fact]
    public void A_text_label_for_multiclass_says_to_apply_MapValueToKey()
    {
        var e = FitMulticlass(Ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass()), mapLabel: false);
        Assert.Contains("needs a key type", e.Message);
        Assert.Contains("MapValueToKey(\"Label\")", e.Message);
    }

    [Fact]
    public void A_text_label_for_binary_asks_for_a_Boolean()
    {
        var data = Ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass());
        var e = Assert.ThrowsAny<Exception>(() => Ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(1)).Fit(data));
        Assert.Contains("needs a Boolean label", e.Message);
    }

    [Fact]
    public void A_single_class_is_refused()
    {
        var rows = ClassificationRows.Multiclass().Where(r => r.Label == "food");
        var e = FitMulticlass(Ml.Data.LoadFromEnumerable(rows));
        Assert.Contains("single class ('food')", e.Message);
    }

    [Fact]
    public void No_rows_are_refused()
    {
        var e = FitMulticlass(Ml.Data.LoadFromEnumerable(Array.Empty<ClassificationRows.TextRow>()));
        Assert.Contains("has no rows", e.Message);
    }

    [Fact]
    public void A_missing_text_column_is_named()
    {
        var data = Ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass().Select(r => new { Body = r.Text, r.Label }));
        var e = FitMulticlass(data);
        Assert.Contains("text column 'Text' is not in the data", e.Message);
    }

    [Fact]
    public void Evaluation_data_with_labels_the_model_never_saw_is_refused()
    {
        var train = Ml.Transforms.Conversion.MapValueToKey("Label").Fit(Ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass()))
            .Transform(Ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass()));
        var model = Ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 1)).Fit(train);
        var other = ClassificationRows.Multiclass().Append(new ClassificationRows.TextRow { Text = "goal!", Label = "sports" });
        var test = Ml.Transforms.Conversion.MapValueToKey("Label").Fit(Ml.Data.LoadFromEnumerable(other))
            .Transform(Ml.Data.LoadFromEnumerable(other));

        var e = Assert.Throws<InvalidOperationException>(() => model.Transform(test));
        Assert.Contains("has 4 classes [weather, money, food, sports]", e.Message);
        Assert.Contains("never saw", e.Message);
    }

    [Fact]
    public void Early_stopping_without_a_validation_set_is_refused()
    {
        var options = ClassificationRows.Options(1);
        options.EarlyStoppingPatience = 2;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options));
        Assert.Contains("needs a ValidationSet", e.Message);
    }

    [Fact]
    public void An_undefined_moment_precision_is_refused_by_name()
    {
        var options = ClassificationRows.Options(1);
        options.TableMomentPrecision = (MomentPrecision)5;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options));
        Assert.Equal(nameof(options.TableMomentPrecision), e.ParamName);
    }
}
