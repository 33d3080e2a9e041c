using Microsoft.ML.MemoryFormer.Configuration;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerLanguageModelBadInputTests
{
    private sealed class NumberRow
    {
        public float Text { get; set; }
    }

    private sealed class BodyRow
    {
        public string Body { get; set; } = "";
    }

    [Fact]
    public void A_missing_text_column_is_named()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(new[] { new BodyRow { Body = "hello" } });
        var e = Assert.ThrowsAny<ArgumentException>(() => ml.Text.MemoryFormer(NanoOptions()).Fit(data));
        Assert.Contains("'Text'", e.Message);
        Assert.Contains("TextColumnName", e.Message);
        Assert.Contains("'Body'", e.Message);
    }

    [Fact]
    public void A_non_text_column_is_rejected_by_fit_and_by_schema_propagation()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(new[] { new NumberRow { Text = 1 } });
        var estimator = ml.Text.MemoryFormer(NanoOptions());
        Assert.Contains("must be text", Assert.ThrowsAny<ArgumentException>(() => estimator.Fit(data)).Message);
        var chain = ml.Transforms.CopyColumns("Copy", "Text").Append(estimator);
        Assert.Contains("must be scalar text", Assert.ThrowsAny<ArgumentException>(() => chain.Fit(data)).Message);
    }

    [Fact]
    public void Empty_data_and_too_little_text_say_what_is_missing()
    {
        var ml = new MLContext(1);
        var empty = ml.Data.LoadFromEnumerable(Array.Empty<Document>());
        Assert.Contains("holds no text", Assert.Throws<ArgumentException>(() => ml.Text.MemoryFormer(NanoOptions()).Fit(empty)).Message);
        var tiny = ml.Data.LoadFromEnumerable(new[] { new Document { Text = "hi" } });
        Assert.Contains("ContextLength", Assert.Throws<ArgumentException>(() => ml.Text.MemoryFormer(NanoOptions()).Fit(tiny)).Message);

        // Text for exactly one window trains on it without the default hold-out (as the other trainers do with few rows).
        var oneWindow = ml.Data.LoadFromEnumerable(new[] { new Document { Text = "call me ishmael, friend" } });   // 23 bytes + end-of-text
        using (var model = ml.Text.MemoryFormer(NanoOptions(steps: 2)).Fit(oneWindow))
            Assert.Null(model.TrainingResult!.BestValidationLoss);

        // A validation set too short for one window is refused, not silently dropped with early stopping.
        var options = NanoOptions();
        options.ValidationSet = tiny;
        var e = Assert.Throws<ArgumentException>(() => ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(LanguageModeling.LanguageModelData.Corpus)));
        Assert.Contains("The validation set holds", e.Message);
        Assert.Contains("ContextLength + 1", e.Message);
    }

    [Theory]
    [InlineData("BatchSize")]
    [InlineData("ContextLength")]
    [InlineData("ValidationFraction")]
    [InlineData("LearningRate")]
    [InlineData("MaxNewTokens")]
    [InlineData("TableMomentPrecision")]
    public void Invalid_options_are_named(string option)
    {
        var options = NanoOptions();
        switch (option)
        {
            case "BatchSize": options.BatchSize = 0; break;
            case "ContextLength": options.ContextLength = 1; break;
            case "ValidationFraction": options.ValidationFraction = 1.5; break;
            case "LearningRate": options.LearningRate = -1; break;
            case "MaxNewTokens": options.Generation = options.Generation with { MaxNewTokens = 0 }; break;
            case "TableMomentPrecision": options.TableMomentPrecision = (MomentPrecision)9; break;
        }
        var e = Assert.ThrowsAny<ArgumentException>(() => new MLContext(1).Text.MemoryFormer(options));
        Assert.Equal(option, e.ParamName);
    }

    [Fact]
    public void A_missing_prompt_column_is_named_at_transform()
    {
        var ml = new MLContext(1);
        using var model = ml.Text.MemoryFormer(NanoOptions(steps: 2)).Fit(ml.Data.LoadFromEnumerable(Corpus));
        var e = Assert.ThrowsAny<ArgumentException>(() => model.Transform(ml.Data.LoadFromEnumerable(new[] { new BodyRow() })));
        Assert.Contains("'Prompt'", e.Message);
        Assert.Contains("PromptColumnName", e.Message);
    }
}
