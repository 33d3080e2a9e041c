using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Tests.LanguageModeling;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Tests.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class PretrainedBackboneTests
{
    private static readonly MemoryFormerConfig LmConfig = MemoryFormerConfig.Nano with
    {
        VocabularySize = 258, ContextLength = 24, Width = 32, Layers = 1,
    };

    /// <summary>Saves a language model the way the language-model trainer does: config, tokenizer, weights.</summary>
    private static string SaveCheckpoint(LanguageModel model)
    {
        var path = Path.Combine(Path.GetTempPath(), $"mf-lm-{Guid.NewGuid():N}.mfa");
        new ModelArchive()
            .SetText(ModelArchive.ConfigEntry, model.Config.ToJson())
            .SetText(ModelArchive.TokenizerEntry, new ByteLevelTokenizer().Describe().ToJson())
            .Set(ModelArchive.WeightsEntry, ModuleWeights.ToBytes(model))
            .SaveAtomically(path);
        return path;
    }

    [Fact]
    public void The_backbone_and_tokenizer_come_from_the_checkpoint()
    {
        random.manual_seed(123);
        using var lm = new LanguageModel(LmConfig);
        var path = SaveCheckpoint(lm);
        try
        {
            var ml = new MLContext(seed: 1);
            var options = ClassificationRows.Options(epochs: 1);
            options.Tokenizer = null;                                   // taken from the checkpoint
            options.Architecture = MemoryFormerConfig.Nano;              // ignored: the checkpoint's architecture wins
            options.PretrainedCheckpointPath = path;
            options.LearningRate = 1e-12;
            options.TableLearningRate = 1e-12;   // keep the weights where the checkpoint put them
            options.WeightDecay = 0;
            options.MaxTokensPerRow = 64;                               // lowered to the checkpoint's context, 24
            var data = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
            var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(data).Model;

            Assert.IsType<ByteLevelTokenizer>(model.Tokenizer);
            Assert.Equal(24, model.MaxTokensPerRow);
            Assert.Equal(LmConfig with { Dropout = options.Dropout }, model.Network.Config);
            WeightAssert.Same(lm.Backbone, model.Network.Backbone, "the checkpoint's backbone");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_language_model_saved_by_its_estimator_is_a_checkpoint_the_classifier_fine_tunes()
    {
        var ml = new MLContext(seed: 1);
        using var lm = ml.Text.MemoryFormer(LanguageModelData.NanoOptions(steps: 3))
            .Fit(ml.Data.LoadFromEnumerable(LanguageModelData.Corpus));
        var path = Path.Combine(Path.GetTempPath(), $"mf-lm-{Guid.NewGuid():N}.mfckpt");
        try
        {
            lm.Save(path);
            var options = ClassificationRows.Options(epochs: 1);
            options.Tokenizer = null;
            options.Architecture = null;
            options.PretrainedCheckpointPath = path;
            options.LearningRate = 1e-12;
            options.TableLearningRate = 1e-12;
            options.WeightDecay = 0;
            var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options)
                .Fit(ml.Data.LoadFromEnumerable(ClassificationRows.Binary())).Model;

            Assert.Equal(lm.Model.Config with { Dropout = options.Dropout }, model.Network.Config);
            Assert.Equal(lm.Tokenizer.Describe().ToJson(), model.Tokenizer.Describe().ToJson());
            WeightAssert.Same(lm.Model.Backbone, model.Network.Backbone, "the saved language model's backbone");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_missing_checkpoint_is_named()
    {
        var options = ClassificationRows.Options(epochs: 1);
        options.PretrainedCheckpointPath = "/nonexistent/lm.mfa";
        var ml = new MLContext(seed: 1);
        var e = Assert.Throws<FileNotFoundException>(() =>
            ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(ml.Data.LoadFromEnumerable(ClassificationRows.Binary())));
        Assert.Contains("/nonexistent/lm.mfa", e.Message);
    }
}
