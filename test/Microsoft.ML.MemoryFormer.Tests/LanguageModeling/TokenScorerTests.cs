using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.LanguageModeling;

/// <summary><see cref="TokenScorer"/>: a short text's token log-probabilities sum to its minimal-pair score, a long one
/// is read in half-overlapping windows exactly as documented, and the tokens' text pieces rebuild the text.</summary>
public sealed class TokenScorerTests : IDisposable
{
    private const int Context = 8;
    private readonly LanguageModel model;
    private readonly ByteLevelTokenizer tokenizer = new();

    public TokenScorerTests()
    {
        TorchRuntime.Seed(5);
        model = new LanguageModel(MemoryFormerConfig.Nano with { VocabularySize = 258, ContextLength = Context });
    }

    public void Dispose() => model.Dispose();

    [Fact]
    public void A_short_texts_tokens_sum_to_its_sentence_log_probability()
    {
        var scores = TokenScorer.Score(model, tokenizer, "cat sat", CPU);

        Assert.Equal(7, scores.Tokens.Count);
        Assert.All(scores.Tokens, t => Assert.True(t.LogProbability < 0));
        double sentence = MinimalPairsEvaluator.SentenceLogProbabilities(model, tokenizer, ["cat sat"], CPU, batchSize: 1)[0];
        Assert.Equal(sentence, scores.LogProbability, 9);
        Assert.Equal(-sentence / Math.Log(2) / 7, scores.BitsPerByte, 9);
    }

    [Fact]
    public void A_long_text_is_read_in_windows_that_move_on_by_half_a_context()
    {
        const string text = "the quick brown fox jumps";                             // 25 bytes: targets 1..25 after EOT
        var scores = TokenScorer.Score(model, tokenizer, text, CPU);
        int[] row = [tokenizer.EndOfTextId, .. tokenizer.Encode(text)];
        Assert.Equal(row.Length - 1, scores.Tokens.Count);

        const int stride = Context / 2;
        for (int k = 1; k < row.Length; k++)
        {
            // The first window whose targets reach token k: starts at a multiple of the stride.
            int start = k <= Context ? 0 : (k - Context + stride - 1) / stride * stride;
            int length = Math.Min(Context, row.Length - 1 - start);
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var inputs = tensor(row.Skip(start).Take(length).Select(x => (long)x).ToArray(), [1, length]);
            var targets = tensor(row.Skip(start + 1).Take(length).Select(x => (long)x).ToArray(), [1, length]);
            double expected = model.TargetLogProbs(inputs, targets).to_type(ScalarType.Float64).data<double>()[k - start - 1];   // fp32 log-softmax
            Assert.Equal(expected, scores.Tokens[k - 1].LogProbability, 5);
        }
        // Beyond the first window a token's history is not the whole text: its score differs from a one-window read.
        Assert.NotEqual(scores.Tokens[^1].LogProbability, TokenScorer.Score(model, tokenizer, text[^8..], CPU).Tokens[^1].LogProbability);
    }

    [Fact]
    public void The_pieces_rebuild_the_text_with_a_multi_byte_character_on_the_token_that_completes_it()
    {
        var scores = TokenScorer.Score(model, tokenizer, "café au lait", CPU);

        Assert.Equal("café au lait", string.Concat(scores.Tokens.Select(t => t.Text)));
        Assert.Equal(13, scores.Tokens.Count);                                  // 'é' is two bytes
        Assert.Equal(("", "é"), (scores.Tokens[3].Text, scores.Tokens[4].Text));
        Assert.Equal(13, scores.Bytes);
        Assert.Empty(TokenScorer.Score(model, tokenizer, "", CPU).Tokens);
        Assert.Throws<ArgumentNullException>(() => TokenScorer.Score(model, tokenizer, null!, CPU));
    }
}
