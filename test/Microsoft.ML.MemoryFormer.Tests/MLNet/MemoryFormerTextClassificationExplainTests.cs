using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary><see cref="MemoryFormerTextClassificationTransformer.Explain"/>: leave-one-out word importance that agrees with
/// what Transform scores, ranks a row's keywords above its filler words, and refuses requests the model cannot answer.</summary>
public class MemoryFormerTextClassificationExplainTests
{
    private sealed class Scored
    {
        public float Probability { get; set; }
    }

    private static (MLContext Ml, MemoryFormerTextClassificationTransformer Model) FitBinary()
    {
        var ml = new MLContext(1);
        var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options())
            .Fit(ml.Data.LoadFromEnumerable(ClassificationRows.Binary()));
        return (ml, model);
    }

    private static float ProbabilityOf(MLContext ml, ITransformer model, string text) =>
        ml.Data.CreateEnumerable<Scored>(model.Transform(ml.Data.LoadFromEnumerable([new ClassificationRows.BinaryRow { Text = text }])),
            reuseRowObject: false).Single().Probability;

    [Fact]
    public void Each_words_importance_is_the_fall_in_the_scored_probability_without_it()
    {
        var (ml, model) = FitBinary();
        using var _ = model;
        const string text = "WIN a FREE prize now";

        var explanation = model.Explain(text);

        Assert.Equal((1, "True"), (explanation.ClassIndex, explanation.ClassName));
        Assert.Equal(ProbabilityOf(ml, model, text), explanation.Probability, 5);
        Assert.Equal(["WIN", "a", "FREE", "prize", "now"], explanation.Words.Select(w => w.Word));
        Assert.Equal([0, 4, 6, 11, 17], explanation.Words.Select(w => w.Start));
        Assert.Equal(explanation.Probability - ProbabilityOf(ml, model, "WIN a prize now"), explanation.Words[2].Importance, 5);
        Assert.Equal(explanation.Probability - ProbabilityOf(ml, model, "WIN a FREE prize"), explanation.Words[4].Importance, 5);

        double keywords = explanation.Words.Where(w => w.Word is "WIN" or "FREE" or "prize").Sum(w => w.Importance);
        double filler = explanation.Words.Where(w => w.Word is "a" or "now").Sum(w => w.Importance);
        Assert.True(keywords > filler, $"keywords {keywords:F4}, filler {filler:F4}");
        Assert.Contains(explanation.Top(1).Single().Word, new[] { "WIN", "FREE", "prize" });

        var against = model.Explain(text, classIndex: 0);                            // the other class: every sign flips
        Assert.Equal("False", against.ClassName);
        Assert.Equal(1 - explanation.Probability, against.Probability, 5);
        Assert.All(explanation.Words.Zip(against.Words), p => Assert.Equal(-p.First.Importance, p.Second.Importance, 5));
    }

    [Fact]
    public void A_multiclass_explanation_names_the_class_and_explains_at_most_maxWords_words()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass());
        using var model = ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options())
            .Fit(ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data));

        var explanation = model.Explain("send money to my bank", maxWords: 3);

        Assert.Equal("money", explanation.ClassName);
        Assert.Equal(model.ClassNames![explanation.ClassIndex], explanation.ClassName);
        Assert.Equal(["send", "money", "to"], explanation.Words.Select(w => w.Word));
        Assert.Equal("food", model.Explain("send money to my bank", classIndex: model.ClassNames.ToList().IndexOf("food")).ClassName);
    }

    [Fact]
    public void Requests_the_model_cannot_answer_are_refused_with_the_reason()
    {
        var (_, model) = FitBinary();
        using var _ = model;

        Assert.Contains("one text column", Assert.Throws<ArgumentException>(() => model.Explain("hi", secondText: "there")).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Explain("hi", classIndex: 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Explain("hi", maxWords: 0));
        Assert.Empty(model.Explain("   ").Words);
    }

    [Theory]
    [InlineData("a b c", 1, "a c")]
    [InlineData("a b c", 2, "a b")]
    [InlineData("one", 0, "")]
    [InlineData("  lead  and trail ", 0, "  and trail ")]
    public void A_word_leaves_with_the_white_space_after_it_or_before_it_at_the_end(string text, int word, string expected) =>
        Assert.Equal(expected, TextOcclusion.Without(text, TextOcclusion.Words(text, inSecond: false)[word]));
}
