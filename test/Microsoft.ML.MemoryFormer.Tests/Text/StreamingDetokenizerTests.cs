using System.Text;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Tests.Text;

public class StreamingDetokenizerTests
{
    public static TheoryData<string> Tokenizers => ["byte-level", "gpt2"];

    private static ITextTokenizer Create(string kind) => ITextTokenizer.FromDescription(new TokenizerDescription(kind, new Dictionary<string, string>()));

    private static (string Joined, List<string> Pieces) Stream(ITextTokenizer tokenizer, IEnumerable<int> ids)
    {
        var detokenizer = new StreamingDetokenizer(tokenizer);
        var pieces = new List<string>();
        foreach (int id in ids)
        {
            pieces.Add(detokenizer.Push(id));
        }

        pieces.Add(detokenizer.Flush());
        return (string.Concat(pieces), pieces);
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void Pieces_of_real_text_concatenate_to_decode(string kind)
    {
        ITextTokenizer tokenizer = Create(kind);
        IReadOnlyList<int> ids = tokenizer.Encode(SampleTexts.Mixed);

        (string joined, List<string> pieces) = Stream(tokenizer, ids);

        Assert.Equal(tokenizer.Decode(ids), joined);
        Assert.DoesNotContain(pieces, piece => piece.Contains('\uFFFD', StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void Random_spans_of_real_text_ids_concatenate_to_decode(string kind)
    {
        // Spans starting and ending anywhere cut multi-byte characters at both ends: the decode then holds U+FFFD,
        // and the pieces must still reproduce it exactly.
        ITextTokenizer tokenizer = Create(kind);
        string corpus = string.Concat(Enumerable.Repeat(SampleTexts.Mixed, 3));
        IReadOnlyList<int> ids = tokenizer.Encode(corpus);
        var random = new Random(7);
        for (int trial = 0; trial < 200; trial++)
        {
            int start = random.Next(ids.Count);
            int length = random.Next(1, Math.Min(40, ids.Count - start) + 1);
            int[] span = ids.Skip(start).Take(length).ToArray();

            Assert.Equal(tokenizer.Decode(span), Stream(tokenizer, span).Joined);
        }
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void Shuffled_real_tokens_concatenate_to_decode(string kind)
    {
        ITextTokenizer tokenizer = Create(kind);
        int[] vocabulary = tokenizer.Encode(SampleTexts.Mixed).Distinct().ToArray();
        var random = new Random(11);
        for (int trial = 0; trial < 100; trial++)
        {
            int[] ids = Enumerable.Range(0, 30).Select(_ => vocabulary[random.Next(vocabulary.Length)]).ToArray();

            Assert.Equal(tokenizer.Decode(ids), Stream(tokenizer, ids).Joined);
        }
    }

    [Fact]
    public void SentencePiece_and_wordpiece_pieces_keep_their_word_boundaries()
    {
        // Their decoders depend on the neighbours (SentencePiece drops the word-start space of the first piece, WordPiece puts
        // spaces between tokens): pieces decoded one by one without context lost every space.
        KeyValuePair<string, float>[] pieces =
            [.. new (string, float)[] { ("<unk>", 0), ("<s>", 0), ("</s>", 0), ("▁the", -1), ("▁whale", -1), ("▁sea", -1), ("▁", -2),
                ("t", -3), ("h", -3), ("e", -3), ("w", -3), ("a", -3), ("l", -3), ("s", -3) }.Select(p => KeyValuePair.Create(p.Item1, p.Item2))];
        var sentencePiece = TokenizerAdapter.SentencePiece(pieces, unknownId: 0);
        var wordPiece = TokenizerAdapter.Bert(Encoding.UTF8.GetBytes(string.Join('\n',
            new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "whale", "sea", "##s", "call", "me", "." }) + "\n"));
        foreach (var (tokenizer, text) in new[] { ((ITextTokenizer)sentencePiece, "the whale the sea the whales the sea the whale"), (wordPiece, "call me. the whales the sea call me. the whale") })
        {
            var ids = tokenizer.Encode(text);
            Assert.True(ids.Count > ContextLongerThan, "precondition: longer than the detokenizer's left context");
            var (joined, _) = Stream(tokenizer, ids);
            Assert.Equal(tokenizer.Decode(ids), joined);
            Assert.Contains(" the", joined, StringComparison.Ordinal);
        }
    }

    private const int ContextLongerThan = StreamingDetokenizer.ContextIds;

    [Fact]
    public void Byte_level_emoji_is_held_back_until_its_last_byte()
    {
        var tokenizer = new ByteLevelTokenizer();
        byte[] bytes = Encoding.UTF8.GetBytes("a😀");
        var detokenizer = new StreamingDetokenizer(tokenizer);

        Assert.Equal("a", detokenizer.Push(bytes[0]));
        Assert.Equal(string.Empty, detokenizer.Push(bytes[1]));
        Assert.Equal(string.Empty, detokenizer.Push(bytes[2]));
        Assert.Equal(string.Empty, detokenizer.Push(bytes[3]));
        Assert.True(detokenizer.HasPending);
        Assert.Equal("😀", detokenizer.Push(bytes[4]));
        Assert.False(detokenizer.HasPending);
    }

    [Fact]
    public void Gpt2_character_split_across_tokens_is_emitted_whole()
    {
        var tokenizer = new Gpt2Tokenizer();
        // Find a character GPT-2 splits over several tokens, each decoding alone to U+FFFD.
        string text = " 👨‍👩‍👧‍👦 done";
        IReadOnlyList<int> ids = tokenizer.Encode(text);
        Assert.Contains(ids, id => tokenizer.Decode([id]).Contains('\uFFFD', StringComparison.Ordinal));

        (string joined, List<string> pieces) = Stream(tokenizer, ids);

        Assert.Equal(text, joined);
        Assert.Contains(pieces, piece => piece.Length == 0);
        Assert.DoesNotContain(pieces, piece => piece.Contains('\uFFFD', StringComparison.Ordinal));
        Assert.Equal(" done", pieces.Last(piece => piece.Length > 0));
    }

    [Fact]
    public void Gpt2_leading_space_tokens_keep_their_spaces()
    {
        var tokenizer = new Gpt2Tokenizer();
        IReadOnlyList<int> ids = tokenizer.Encode("Hello big world");

        (_, List<string> pieces) = Stream(tokenizer, ids);

        Assert.Equal(["Hello", " big", " world", ""], pieces);
    }
}
