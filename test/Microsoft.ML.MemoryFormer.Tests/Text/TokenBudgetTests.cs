using System.Diagnostics;
using System.Text;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Tests.Text;

public class TokenBudgetTests
{
    private static readonly string Sentence = "The quick brown fox jumps over the lazy dog; naïve café, 東京, emoji 🦊. ";

    public static TheoryData<string> Tokenizers => [ByteLevelTokenizer.Kind, Gpt2Tokenizer.Kind];

    private static ITextTokenizer Make(string kind) => kind == Gpt2Tokenizer.Kind ? new Gpt2Tokenizer() : new ByteLevelTokenizer();

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void Head_and_tail_equal_the_full_encoding_cut_to_the_budget(string kind)
    {
        var tokenizer = Make(kind);
        var text = string.Concat(Enumerable.Repeat(Sentence, 200));
        var full = tokenizer.Encode(text);
        Assert.Equal(full.Take(50), TokenBudget.Head(tokenizer, text, 50));
        Assert.Equal(full.Skip(full.Count - 50), TokenBudget.Tail(tokenizer, text, 50));
        var shortText = Sentence;
        Assert.Equal(tokenizer.Encode(shortText), TokenBudget.Head(tokenizer, shortText, 1000));
        Assert.Equal(tokenizer.Encode(shortText), TokenBudget.Tail(tokenizer, shortText, 1000));
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void A_1_MB_text_costs_about_as_much_as_a_short_one(string kind)
    {
        var tokenizer = Make(kind);
        TokenBudget.Head(tokenizer, Sentence, 8);                                     // warm-up (GPT-2 loads its vocabulary)
        var spaced = string.Concat(Enumerable.Repeat(Sentence, 1_000_000 / Sentence.Length));
        var oneWord = new string('a', 1_000_000);                                      // one pre-token: the worst case for BPE
        var clock = Stopwatch.StartNew();
        foreach (var text in new[] { spaced, oneWord })
        {
            Assert.Equal(128, TokenBudget.Head(tokenizer, text, 128).Count);
            Assert.Equal(128, TokenBudget.Tail(tokenizer, text, 128).Count);
        }
        Assert.True(clock.ElapsedMilliseconds < 500, $"4 truncated encodings of 1 MB took {clock.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void The_cut_never_splits_a_surrogate_pair()
    {
        var text = "x🦊🦊x";                                                         // x, high, low, high, low, x
        Assert.Equal("x", TokenBudget.Cut(text, 2, fromEnd: false));                 // would end on a high surrogate
        Assert.Equal("x🦊", TokenBudget.Cut(text, 3, fromEnd: false));
        Assert.Equal("x", TokenBudget.Cut(text, 2, fromEnd: true));                  // would start on a low surrogate
        Assert.Equal("🦊x", TokenBudget.Cut(text, 3, fromEnd: true));
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void Unpaired_surrogates_encode_as_the_replacement_character(string kind)
    {
        var tokenizer = Make(kind);
        Assert.Equal(tokenizer.Encode("a\uFFFDb"), tokenizer.Encode("a\uD800b"));
        Assert.Equal(tokenizer.Encode("a\uFFFDb"), tokenizer.Encode("a\uDC00b"));
        Assert.Equal("a\uFFFDb", tokenizer.Decode(tokenizer.Encode("a\uD800b")));
        Assert.Equal(Encoding.UTF8.GetBytes("\uFFFD").Length, tokenizer.CountBytes("\uD800"));
    }
}
