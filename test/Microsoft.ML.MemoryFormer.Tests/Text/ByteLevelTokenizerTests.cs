using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Tests.Text;

public class ByteLevelTokenizerTests
{
    private readonly ByteLevelTokenizer _tokenizer = new();

    [Fact]
    public void Round_trips_emoji_CJK_and_accents()
    {
        IReadOnlyList<int> ids = _tokenizer.Encode(SampleTexts.Mixed);

        Assert.Equal(_tokenizer.CountBytes(SampleTexts.Mixed), ids.Count);
        Assert.All(ids, id => Assert.InRange(id, 0, 255));
        Assert.Equal(SampleTexts.Mixed, _tokenizer.Decode(ids));
    }

    [Fact]
    public void Special_token_text_in_input_is_encoded_as_bytes()
    {
        IReadOnlyList<int> ids = _tokenizer.Encode("a<|endoftext|>b");

        Assert.DoesNotContain(ByteLevelTokenizer.EndOfText, ids);
        Assert.Equal("a<|endoftext|>b", _tokenizer.Decode(ids));
    }

    [Fact]
    public void Vocabulary_holds_bytes_end_of_text_and_padding()
    {
        Assert.Equal(258, _tokenizer.VocabularySize);
        Assert.Equal(256, _tokenizer.EndOfTextId);
        Assert.Equal(257, _tokenizer.PadId);
        Assert.Equal("ab<|endoftext|>c", _tokenizer.Decode([97, 98, 256, 257, 99]));
    }

    [Fact]
    public void Character_cut_by_the_end_decodes_to_replacement_character()
    {
        IReadOnlyList<int> ids = _tokenizer.Encode("é");

        Assert.Equal("\uFFFD", _tokenizer.Decode(ids.Take(1)));
    }

    [Fact]
    public void Description_round_trips_through_json()
    {
        string json = _tokenizer.Describe().ToJson();
        ITextTokenizer rebuilt = ITextTokenizer.FromDescription(TokenizerDescription.FromJson(json));

        Assert.IsType<ByteLevelTokenizer>(rebuilt);
        Assert.Equal(_tokenizer.Encode(SampleTexts.Mixed), rebuilt.Encode(SampleTexts.Mixed));
    }

    [Fact]
    public void Unknown_kind_is_rejected_with_the_known_kinds()
    {
        var error = Assert.Throws<ArgumentException>(() => ITextTokenizer.FromDescription(new TokenizerDescription("sentencepiece", new Dictionary<string, string>())));

        Assert.Contains("gpt2", error.Message, StringComparison.Ordinal);
    }
}
