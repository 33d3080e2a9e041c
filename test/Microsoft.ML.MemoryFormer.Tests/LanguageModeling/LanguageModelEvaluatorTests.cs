using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.LanguageModeling;

public class LanguageModelEvaluatorTests
{
    [Fact]
    public void A_uniform_model_costs_ln_V_per_token_and_bits_per_byte_count_utf8_bytes()
    {
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { VocabularySize = 258, ContextLength = 4 });
        using (no_grad())
            foreach (var (name, parameter) in model.named_parameters())
                if (name.StartsWith("head", StringComparison.Ordinal)) parameter.zero_();   // logits ≡ 0: uniform over 258
        // EOT a b c EOT 0xC3 0xA9 EOT 1 2 3 4 5 6 EOT: 14 predicted tokens over 3 + 2 + 6 = 11 bytes; T = 4 leaves a tail window
        var metrics = LanguageModelEvaluator.Evaluate(model, new ByteLevelTokenizer(), ["abc", "é", "", "123456"], CPU, batchSize: 2);
        Assert.Equal(14, metrics.Tokens);
        Assert.Equal(11, metrics.Bytes);
        Assert.Equal(Math.Log(258), metrics.LossNatsPerToken, 5);
        Assert.Equal(258, metrics.Perplexity, 3);
        Assert.Equal(14 * Math.Log(258) / (Math.Log(2) * 11), metrics.BitsPerByte, 5);
    }

    [Fact]
    public void The_catalog_evaluator_agrees_with_the_model_and_perplexity_is_exp_loss()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Corpus);
        using var model = ml.Text.MemoryFormer(NanoOptions()).Fit(data);
        var metrics = ml.Text.EvaluateLanguageModel(model, data);
        Assert.Equal(Math.Exp(metrics.LossNatsPerToken), metrics.Perplexity, 6);
        Assert.Equal(metrics.TotalNats / (Math.Log(2) * metrics.Bytes), metrics.BitsPerByte, 9);
        Assert.Equal(Corpus.Sum(d => d.Text.Length), metrics.Bytes);
        Assert.True(metrics.LossNatsPerToken < Math.Log(258), $"trained loss {metrics.LossNatsPerToken}");
    }
}
