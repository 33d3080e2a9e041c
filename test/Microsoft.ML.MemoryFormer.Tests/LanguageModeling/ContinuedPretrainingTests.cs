using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Tests.Models;

namespace Microsoft.ML.MemoryFormer.Tests.LanguageModeling;

/// <summary>The language-model trainer going on from a trained model (<c>Options.InitialModel</c>, used by
/// <c>bench pretrain --init</c> for continued and task-adaptive pretraining) instead of random weights.</summary>
public class ContinuedPretrainingTests
{
    [Fact]
    public void Continued_training_starts_from_the_initial_weights()
    {
        var ml = new MLContext(seed: 1);
        var corpus = ml.Data.LoadFromEnumerable(LanguageModelData.Corpus);
        using var first = ml.Text.MemoryFormer(LanguageModelData.NanoOptions(steps: 3)).Fit(corpus);
        var path = Path.Combine(Path.GetTempPath(), $"mf-lm-{Guid.NewGuid():N}.mfckpt");
        try
        {
            first.Save(path);
            var (initial, tokenizer) = PretrainedCheckpoint.Load(path);
            var options = LanguageModelData.NanoOptions(steps: 1);
            options.InitialModel = initial;
            options.Architecture = initial.Config;
            options.CustomTokenizer = tokenizer;
            options.LearningRate = 1e-12;
            options.TableLearningRate = 1e-12;   // one step that cannot move the weights: they must be the checkpoint's
            options.WeightDecay = 0;
            using var continued = ml.Text.MemoryFormer(options).Fit(corpus);

            Assert.Same(initial, continued.Model);
            WeightAssert.Same(first.Model, continued.Model, "the initial model");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void An_initial_model_of_another_architecture_is_refused()
    {
        var ml = new MLContext(seed: 1);
        var corpus = ml.Data.LoadFromEnumerable(LanguageModelData.Corpus);
        using var first = ml.Text.MemoryFormer(LanguageModelData.NanoOptions(steps: 1)).Fit(corpus);
        var options = LanguageModelData.NanoOptions(steps: 1);
        options.InitialModel = first.Model;
        options.ContextLength = first.Config.ContextLength * 2;   // another context length: another architecture

        var error = Assert.Throws<ArgumentException>(() => ml.Text.MemoryFormer(options).Fit(corpus));
        Assert.Contains("initial model", error.Message, StringComparison.Ordinal);
    }
}
