using System.Text;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.Tokenizers;

namespace Microsoft.ML.MemoryFormer.Tests.Text;

/// <summary>
/// <see cref="Gpt2WordEncoder"/> against Microsoft.ML.Tokenizers: its words against the library's GPT-2 pre-tokenizer, and
/// <see cref="Gpt2Tokenizer.Encode"/>'s ids against <see cref="Gpt2Tokenizer.EncodeWithLibrary"/> (the path before it), on
/// sample text, every BMP character in the contexts the pattern tells apart, and random text mixing every character class.
/// </summary>
public class Gpt2WordEncoderTests
{
    private static readonly TiktokenTokenizer Library = TiktokenTokenizer.CreateForModel("gpt2");
    private readonly Gpt2Tokenizer _tokenizer = new();

    // Letters of several scripts, numbers (digits, ², Ⅻ, ½), marks (not letters), punctuation and symbols, every kind of white space,
    // the apostrophe and the contractions' letters, surrogate pairs (emoji, 𝔸) and pieces of "<|endoftext|>".
    private static readonly string[] Pieces =
    [
        "a", "Z", "é", "ß", "日", "ж", "ا", "ǅ", "ʰ", "s", "d", "m", "t", "l", "v", "e", "r", "0", "7", "٣", "²", "Ⅻ", "½",
        "\u0301", "\u093F", ".", ",", "!", "-", "—", "€", "∑", "_", "<|", "|>", "endoftext", "<|endoftext|>", "'", "'s", "'ll", "'ve", "'re",
        "'t", "'d", "'m", "'S", " ", " ", "  ", "\t", "\n", "\r\n", "\u00A0", "\u2003", "\u2028", "\u0085", "\u000B", "\u000C",
        "😀", "👍🏽", "𝔸", "\u200D", "\uFEFF", "\u0000", "\u00AD",
    ];

    [Fact]
    public void Words_are_the_library_pre_tokenizer_words_on_random_text()
    {
        var random = new Random(21);
        for (int trial = 0; trial < 3000; trial++)
        {
            string text = RandomText(random, random.Next(1, 40));
            Assert.Equal(LibraryWords(text), Words(text));
        }
    }

    [Fact]
    public void Words_are_the_library_pre_tokenizer_words_for_every_bmp_character()
    {
        var contexts = new[] { "{0}", " {0}", "{0}{0}", "a{0}b", "1{0}", " {0} ", "'{0}", "x {0}\n", "{0}  ", ".{0}." };
        var mismatches = new List<string>();
        for (int c = 0; c < 0x10000; c++)
        {
            if (char.IsSurrogate((char)c)) continue;                // Gpt2Tokenizer replaces lone surrogates before encoding
            string ch = ((char)c).ToString();
            foreach (var context in contexts)
            {
                string text = context.Replace("{0}", ch, StringComparison.Ordinal);
                if (!LibraryWords(text).SequenceEqual(Words(text))) mismatches.Add($"U+{c:X4} in \"{context}\"");
            }
        }
        Assert.Empty(mismatches);
    }

    [Theory]
    [InlineData("Hello world")]
    [InlineData(SampleTexts.Mixed)]
    [InlineData("<|endoftext|>")]
    [InlineData("before <|endoftext|> after")]
    [InlineData("x<|endoftext|><|endoftext|>.y")]
    [InlineData(" <|endoftext|>.")]
    [InlineData("don't we'll they've you're I'm he'd it's 'tis ''s 'LL rock'n'roll")]
    [InlineData("   leading, trailing and  double spaces   ")]
    [InlineData("tabs\tand\nnew\r\nlines\n\n\n  indented\n")]
    [InlineData("Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis")]
    [InlineData("numbers 3.14159 1,000,000 ²³ ½ and 2026-12-07T06:00Z")]
    [InlineData("")]
    public void Ids_are_the_library_ids(string text)
    {
        Assert.Equal(_tokenizer.EncodeWithLibrary(text), _tokenizer.Encode(text));
    }

    [Fact]
    public void Ids_are_the_library_ids_on_random_text_and_across_a_cleared_cache()
    {
        var random = new Random(7);
        var texts = Enumerable.Range(0, 400).Select(_ => RandomText(random, random.Next(0, 200))).ToArray();
        var expected = texts.Select(t => _tokenizer.EncodeWithLibrary(t).ToArray()).ToArray();

        var first = texts.Select(t => _tokenizer.Encode(t).ToArray()).ToArray();
        var again = texts.Select(t => _tokenizer.Encode(t).ToArray()).ToArray();      // now from the cache
        Gpt2WordEncoder.ClearCache();
        var cleared = texts.Select(t => _tokenizer.Encode(t).ToArray()).ToArray();

        Assert.Equal(expected, first);
        Assert.Equal(expected, again);
        Assert.Equal(expected, cleared);
    }

    [Fact]
    public void Lone_surrogates_are_replaced_as_before()
    {
        string text = "a\uD800b \uDC00 c\uD83D\uDE00d\uD83D";
        Assert.Equal(_tokenizer.EncodeWithLibrary("a\uFFFDb \uFFFD c\uD83D\uDE00d\uFFFD"), _tokenizer.Encode(text));
    }

    [Fact]
    public void Threads_sharing_the_cache_get_the_library_ids()
    {
        var random = new Random(3);
        var texts = Enumerable.Range(0, 200).Select(_ => RandomText(random, random.Next(20, 120))).ToArray();
        var expected = texts.Select(t => _tokenizer.EncodeWithLibrary(t).ToArray()).ToArray();
        Gpt2WordEncoder.ClearCache();
        var results = new int[4][][];
        Parallel.For(0, 4, w => results[w] = texts.Select(t => new Gpt2Tokenizer().Encode(t).ToArray()).ToArray());

        Assert.All(results, r => Assert.Equal(expected, r));
    }

    [Fact]
    public void The_cache_stays_bounded_and_skips_long_words()
    {
        string longWord = new('q', Gpt2WordEncoder.MaxCachedWordLength + 5);
        Gpt2WordEncoder.ClearCache();
        _tokenizer.Encode(longWord);
        Assert.Equal(0, Gpt2WordEncoder.CachedWords);                  // only a word ≤ MaxCachedWordLength is kept

        var random = new Random(5);
        var words = new StringBuilder();
        for (int i = 0; i < Gpt2WordEncoder.MaxCachedWords + 2000; i++)
        {
            words.Append(' ');
            for (int k = 0; k < 6; k++) words.Append((char)('a' + random.Next(26)));
        }
        _tokenizer.Encode(words.ToString());

        Assert.InRange(Gpt2WordEncoder.CachedWords, 1, Gpt2WordEncoder.MaxCachedWords);
        Assert.Equal(_tokenizer.EncodeWithLibrary(words.ToString()[..5000]), _tokenizer.Encode(words.ToString()[..5000]));
    }

    private static string RandomText(Random random, int pieces)
    {
        var text = new StringBuilder();
        for (int i = 0; i < pieces; i++) text.Append(Pieces[random.Next(Pieces.Length)]);
        return text.ToString();
    }

    private static string[] LibraryWords(string text)
    {
        // The special token is the library's own split; Gpt2Tokenizer cuts it (EncodeWithLibrary), the scanner never forms it.
        if (text.Contains("<|endoftext|>", StringComparison.Ordinal)) return Words(text);
        return Library.PreTokenizer!.PreTokenize(text).Select(w => text.Substring(w.Offset, w.Length)).ToArray();
    }

    private static string[] Words(string text)
    {
        var words = new List<string>();
        for (int start = 0; start < text.Length;)
        {
            int end = Gpt2WordEncoder.NextWord(text, start);
            Assert.True(end > start);
            words.Add(text[start..end]);
            start = end;
        }
        return [.. words];
    }
}
