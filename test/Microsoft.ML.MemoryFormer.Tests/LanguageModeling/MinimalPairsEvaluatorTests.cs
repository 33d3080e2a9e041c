using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.LanguageModeling;

public class MinimalPairsEvaluatorTests
{
    private static LanguageModel Untrained(bool uniform)
    {
        TorchRuntime.Seed(5);
        var model = new LanguageModel(MemoryFormerConfig.Nano with { VocabularySize = 258, ContextLength = 8 });
        if (uniform)
            using (no_grad())
                foreach (var (name, parameter) in model.named_parameters())
                    if (name.StartsWith("head", StringComparison.Ordinal)) parameter.zero_();   // logits ≡ 0: uniform over 258
        return model;
    }

    [Fact]
    public void A_pair_is_right_only_when_the_good_sentence_is_strictly_more_likely()
    {
        using var model = Untrained(uniform: true);
        // Uniform: log P = −n ln 258 for n bytes. Shorter good sentence: right; longer: wrong; a tie: wrong.
        var metrics = MinimalPairsEvaluator.Evaluate(model, new ByteLevelTokenizer(), [("ab", "abc"), ("abcd", "ab"), ("xy", "yx")], CPU, batchSize: 2);
        Assert.Equal(3, metrics.Pairs);
        Assert.Equal(1, metrics.Correct);
        Assert.Equal(1 / 3.0, metrics.Accuracy, 9);
        Assert.Equal((Math.Log(258) - 2 * Math.Log(258) + 0) / 3, metrics.MeanMarginNats, 4);
    }

    [Fact]
    public void Sentences_score_the_same_alone_and_right_padded_in_a_batch()
    {
        using var model = Untrained(uniform: false);
        string[] sentences = ["a", "hello", "abcdefgh", "cat"];
        var batched = MinimalPairsEvaluator.SentenceLogProbabilities(model, new ByteLevelTokenizer(), sentences, CPU, batchSize: 4);
        var alone = MinimalPairsEvaluator.SentenceLogProbabilities(model, new ByteLevelTokenizer(), sentences, CPU, batchSize: 1);
        for (int i = 0; i < sentences.Length; i++) Assert.Equal(alone[i], batched[i], 4);
        Assert.All(batched, v => Assert.True(v < 0));
        var error = Assert.Throws<ArgumentException>(() =>
            MinimalPairsEvaluator.SentenceLogProbabilities(model, new ByteLevelTokenizer(), ["abcdefghi"], CPU, batchSize: 1));
        Assert.Contains("context length 8", error.Message);
    }

    [Fact]
    public void A_trained_model_prefers_the_word_order_it_was_trained_on()
    {
        var ml = new MLContext(1);
        var options = NanoOptions(steps: 60);
        options.ContextLength = 32;                                               // the sentences are up to 23 bytes
        using var model = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus));
        var metrics = model.EvaluateMinimalPairs([("the dog ran to the log.", "the log ran to the dog."), ("the cat sat on the mat", "the mat sat on the cat")]);
        Assert.Equal(2, metrics.Pairs);
        Assert.Equal(1.0, metrics.Accuracy);
        Assert.True(metrics.MeanMarginNats > 0);
    }
}
