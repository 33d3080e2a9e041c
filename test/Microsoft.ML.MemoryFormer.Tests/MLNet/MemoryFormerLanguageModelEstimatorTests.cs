using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerLanguageModelEstimatorTests
{
    private sealed class DocumentAndPrompt
    {
        public string Text { get; set; } = "";
        public string Prompt { get; set; } = "";
    }

    private sealed class DocumentAndNumber
    {
        public string Text { get; set; } = "";
        public float Number { get; set; }
    }

    [Fact]
    public void Inside_an_Append_chain_training_data_without_prompts_fits_and_the_chain_then_generates()
    {
        var ml = new MLContext(1);
        var pipeline = ml.Transforms.CopyColumns("Original", "Text").Append(ml.Text.MemoryFormer(NanoOptions(steps: 2)));
        var corpus = ml.Data.LoadFromEnumerable(Corpus);

        var chain = pipeline.Fit(corpus);   // EstimatorChain.Fit transforms the training data after training
        using var model = chain.LastTransformer;

        var trained = chain.Transform(corpus);
        Assert.Equal(["Text", "Original"], trained.Schema.Select(c => c.Name));
        var generated = chain.Transform(ml.Data.LoadFromEnumerable(new[] { new DocumentAndPrompt { Text = "a", Prompt = "the cat" } }));
        Assert.Equal(TextDataViewType.Instance, generated.Schema["GeneratedText"].Type);
        Assert.Single(generated.GetColumn<string>("GeneratedText"));
    }

    [Fact]
    public void GetOutputSchema_adds_the_generated_text_only_where_Transform_adds_it()
    {
        var ml = new MLContext(1);
        var estimator = ml.Text.MemoryFormer(NanoOptions(steps: 2));
        var documents = ml.Data.LoadFromEnumerable(Corpus);
        var documentsAndPrompts = ml.Data.LoadFromEnumerable(new[] { new DocumentAndPrompt { Text = "the cat", Prompt = "the" } });

        var onTraining = estimator.GetOutputSchema(MLNetInternals.ShapeOf(documents.Schema));
        var onPrompts = estimator.GetOutputSchema(MLNetInternals.ShapeOf(documentsAndPrompts.Schema));

        using var model = estimator.Fit(documents);
        Assert.Equal(model.GetOutputSchema(documents.Schema).Select(c => c.Name).Order(), onTraining.Select(c => c.Name).Order());
        Assert.DoesNotContain(onTraining, c => c.Name == "GeneratedText");
        Assert.Equal(model.GetOutputSchema(documentsAndPrompts.Schema).Select(c => c.Name).Order(), onPrompts.Select(c => c.Name).Order());
        Assert.Equal(TextDataViewType.Instance, onPrompts.Single(c => c.Name == "GeneratedText").ItemType);
    }

    [Fact]
    public void GetOutputSchema_names_a_prompt_column_of_the_wrong_type()
    {
        var ml = new MLContext(1);
        var options = NanoOptions(steps: 2);
        options.PromptColumnName = "Number";
        var data = ml.Data.LoadFromEnumerable(new[] { new DocumentAndNumber { Text = "a b c", Number = 1 } });
        var e = Assert.ThrowsAny<ArgumentException>(() => ml.Text.MemoryFormer(options).GetOutputSchema(MLNetInternals.ShapeOf(data.Schema)));
        Assert.Contains("Column 'Number' (PromptColumnName) must be scalar text", e.Message);
    }

    [Theory]
    [InlineData(TransformerKind.MemoryFormer)]
    [InlineData(TransformerKind.Dense)]
    public void Scoring_a_validation_set_every_few_steps_leaves_the_training_bit_identical(TransformerKind kind)
    {
        // bench lm-tokens --eval-every relies on this: its learning curves must not change the runs they describe
        var ml = new MLContext(1);
        var corpus = ml.Data.LoadFromEnumerable(Corpus);
        var heldOut = ml.Data.LoadFromEnumerable(Corpus.Take(3));
        LossProgress plainReports = new(), curveReports = new();
        var plain = NanoOptions(steps: 12);
        plain.Architecture = plain.Architecture with { Kind = kind };
        (plain.ValidationFraction, plain.ValidateEvery, plain.Progress) = (0, 0, plainReports);
        var curve = NanoOptions(steps: 12);
        curve.Architecture = plain.Architecture;
        (curve.ValidationFraction, curve.ValidationSet, curve.ValidateEvery, curve.Progress) = (0, heldOut, 3, curveReports);

        using var a = new MLContext(1).Text.MemoryFormer(plain).Fit(corpus);      // a context each: the same seed
        using var b = new MLContext(1).Text.MemoryFormer(curve).Fit(corpus);

        Assert.Empty(plainReports.Validations);
        Assert.Equal(4, curveReports.Validations.Count);                  // steps 3, 6, 9 and 12
        Assert.Equal(a.TrainingResult!.LossHistory, b.TrainingResult!.LossHistory);
        Assert.Equal(a.Evaluate(heldOut).LossNatsPerToken, b.Evaluate(heldOut).LossNatsPerToken);
    }

    private sealed class LossProgress : IProgress<TrainingProgress>
    {
        public List<double> Validations { get; } = [];

        public void Report(TrainingProgress value)
        {
            if (value.ValidationLoss is { } loss) Validations.Add(loss);
        }
    }
}
