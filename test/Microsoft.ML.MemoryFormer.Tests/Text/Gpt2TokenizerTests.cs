using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Tests.Text;

public class Gpt2TokenizerTests
{
    private readonly Gpt2Tokenizer _tokenizer = new();

    [Fact]
    public void Round_trips_unicode_text()
    {
        IReadOnlyList<int> ids = _tokenizer.Encode(SampleTexts.Mixed);

        Assert.All(ids, id => Assert.InRange(id, 0, 50255));
        Assert.Equal(SampleTexts.Mixed, _tokenizer.Decode(ids));
    }

    [Fact]
    public void Encodes_known_ids()
    {
        // "Hello world" is [15496, 995] in GPT-2 (tiktoken).
        Assert.Equal([15496, 995], _tokenizer.Encode("Hello world"));
    }

    [Theory]
    [InlineData("<|endoftext|>")]
    [InlineData("before <|endoftext|> after")]
    [InlineData("x<|endoftext|><|endoftext|>.y")]
    public void User_text_spelling_end_of_text_is_not_the_special_id(string text)
    {
        IReadOnlyList<int> ids = _tokenizer.Encode(text);

        Assert.DoesNotContain(50256, ids);
        Assert.Equal(text, _tokenizer.Decode(ids));
    }

    [Fact]
    public void Special_text_is_encoded_like_plain_tiktoken()
    {
        // tiktoken's encode(..., disallowed_special=()) pre-tokenizes "<|endoftext|>" as "<|", "endoftext", "|>".
        IReadOnlyList<int> ids = _tokenizer.Encode(" <|endoftext|>.");
        int[] expected = [.. _tokenizer.Encode(" <|"), .. _tokenizer.Encode("endoftext"), .. _tokenizer.Encode("|>.")];

        Assert.Equal(expected, ids);
        Assert.Equal([27, 91, 437, 1659, 5239, 91, 29], _tokenizer.Encode("<|endoftext|>"));
    }

    [Fact]
    public void Sizes_and_special_ids_are_documented_values()
    {
        Assert.Equal(50257, _tokenizer.VocabularySize);
        Assert.Equal(50304, _tokenizer.ModelVocabularySize);
        Assert.Equal(0, _tokenizer.ModelVocabularySize % 128);
        Assert.Equal(50256, _tokenizer.EndOfTextId);
        Assert.Null(_tokenizer.PadId);
        Assert.Equal("<|endoftext|>", _tokenizer.Decode([50256]));
        foreach (int id in new[] { -1, 50257, 50300 })                                 // as the byte-level tokenizer: refused, not ""
            Assert.Throws<ArgumentOutOfRangeException>(() => _tokenizer.Decode([40, id]));
    }

    [Fact]
    public void Description_round_trips_through_json()
    {
        TokenizerDescription description = TokenizerDescription.FromJson(_tokenizer.Describe().ToJson());
        ITextTokenizer rebuilt = ITextTokenizer.FromDescription(description);

        Assert.Equal("gpt2", description.Kind);
        Assert.IsType<Gpt2Tokenizer>(rebuilt);
        Assert.Equal(_tokenizer.Encode(SampleTexts.Mixed), rebuilt.Encode(SampleTexts.Mixed));
    }

    [Fact]
    public void Counts_utf8_bytes_for_bits_per_byte()
    {
        Assert.Equal(3 + 3 + 4, _tokenizer.CountBytes("abc日😀"));
    }
}
