using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// Any <see cref="Microsoft.ML.Tokenizers.Tokenizer"/> as a MemoryFormer tokenizer: tiktoken encodings, byte-pair
/// encoding, SentencePiece (Llama and others) and WordPiece (BERT). Built from its vocabulary files with the factory
/// methods, it keeps those files and stores them in a saved model, so the model loads with the same tokenizer
/// anywhere (no network, no file next to the model).
/// </summary>
/// <remarks>
/// <para>A tokenizer built some other way can still be used with <see cref="Wrap"/> for training and generation, but
/// a model that uses it cannot be saved: <see cref="Describe"/> refuses it, naming the factory to use instead.</para>
/// <para><see cref="Encode"/> treats its input as plain text: a special token spelled in the text (<c>&lt;|endoftext|&gt;</c>,
/// <c>[SEP]</c>, <c>&lt;/s&gt;</c>) is encoded as ordinary text, and BERT's <c>[CLS]</c>/<c>[SEP]</c> and
/// SentencePiece's beginning-of-sentence are not added.</para>
/// <para>The files are kept in memory and stored base64-encoded in the model's tokenizer description
/// (<see cref="TokenizerDescription"/>, kind <see cref="Kind"/>): a GPT-2-sized vocabulary adds about 1 MB.</para>
/// </remarks>
public sealed class TokenizerAdapter : ITextTokenizer
{
    /// <summary>The <see cref="TokenizerDescription.Kind"/> of a stored adapter; its <c>type</c> parameter says which tokenizer.</summary>
    public const string Kind = "ml-tokenizers";

    private readonly IReadOnlyDictionary<string, string>? stored;
    private readonly string[] specialTexts;
    private readonly Func<string, IReadOnlyList<int>> encode;

    private TokenizerAdapter(Tokenizer tokenizer, int vocabularySize, int endOfTextId, int? padId, IEnumerable<string> specialTexts,
        IReadOnlyDictionary<string, string>? stored, Func<string, IReadOnlyList<int>>? encode = null)
    {
        if (endOfTextId < 0 || endOfTextId >= vocabularySize)
            throw new ArgumentOutOfRangeException(nameof(endOfTextId), endOfTextId, $"The end-of-text id must be in [0, {vocabularySize}).");
        if (padId is { } pad && (pad < 0 || pad >= vocabularySize))
            throw new ArgumentOutOfRangeException(nameof(padId), padId, $"The padding id must be in [0, {vocabularySize}).");
        Tokenizer = tokenizer;
        VocabularySize = vocabularySize;
        EndOfTextId = endOfTextId;
        PadId = padId;
        this.specialTexts = specialTexts.Where(s => s.Length > 1).Distinct().ToArray();
        this.stored = stored;
        this.encode = encode ?? (text => tokenizer.EncodeToIds(text));
    }

    /// <summary>The wrapped Microsoft.ML.Tokenizers tokenizer.</summary>
    public Tokenizer Tokenizer { get; }

    /// <inheritdoc />
    public int VocabularySize { get; }

    /// <inheritdoc />
    /// <remarks><see cref="VocabularySize"/> rounded up to a multiple of 64.</remarks>
    public int ModelVocabularySize => (VocabularySize + 63) / 64 * 64;

    /// <inheritdoc />
    public int EndOfTextId { get; }

    /// <inheritdoc />
    public int? PadId { get; }

    /// <summary>True when a model using this tokenizer can be saved (it was built by a factory method, not <see cref="Wrap"/>).</summary>
    public bool CanBeStored => stored is not null;

    /// <summary>A tiktoken tokenizer (the <c>.tiktoken</c> format: one <c>base64-token rank</c> line per token).</summary>
    /// <param name="vocabularyFile">The bytes of the <c>.tiktoken</c> file.</param>
    /// <param name="pattern">The pre-tokenizer's regular expression (each encoding has its own; GPT-2's splits words, numbers, punctuation and spaces).</param>
    /// <param name="specialTokens">Special tokens and their ids; must contain <paramref name="endOfTextToken"/>.</param>
    /// <param name="endOfTextToken">The token that separates documents and ends generation, for example <c>&lt;|endoftext|&gt;</c>.</param>
    /// <returns>The tokenizer.</returns>
    public static TokenizerAdapter Tiktoken(byte[] vocabularyFile, string pattern, IReadOnlyDictionary<string, int> specialTokens,
        string endOfTextToken)
    {
        ArgumentNullException.ThrowIfNull(vocabularyFile);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        ArgumentNullException.ThrowIfNull(specialTokens);
        int endOfText = SpecialId(specialTokens, endOfTextToken, nameof(specialTokens));
        var specials = new Dictionary<string, int>(specialTokens);
        // A pattern read from a model file could backtrack without end: a match may take one second at most.
        var preTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled, TimeSpan.FromSeconds(1)), specials);
        using var vocabulary = new MemoryStream(vocabularyFile, writable: false);
        var tokenizer = TiktokenTokenizer.Create(vocabulary, preTokenizer, normalizer: null, specials);
        int size = Math.Max(MaxTiktokenRank(vocabularyFile), specials.Values.Max()) + 1;
        return new TokenizerAdapter(tokenizer, size, endOfText, null, specials.Keys, new Dictionary<string, string>
        {
            ["type"] = "tiktoken",
            ["vocabulary"] = Convert.ToBase64String(vocabularyFile),
            ["pattern"] = pattern,
            ["specialTokens"] = JsonSerializer.Serialize(specials),
            ["endOfText"] = endOfTextToken,
        });
    }

    /// <summary>A byte-pair-encoding tokenizer from Hugging Face style files, with a white-space pre-tokenizer.</summary>
    /// <param name="vocabularyJson">The bytes of <c>vocab.json</c> (token → id).</param>
    /// <param name="merges">The bytes of <c>merges.txt</c> (one merged pair per line).</param>
    /// <param name="specialTokens">Special tokens and their ids; must contain <paramref name="endOfTextToken"/>.</param>
    /// <param name="endOfTextToken">The token that separates documents and ends generation.</param>
    /// <param name="unknownToken">The vocabulary's unknown token, or null when every character is in the vocabulary.</param>
    /// <returns>The tokenizer.</returns>
    public static TokenizerAdapter Bpe(byte[] vocabularyJson, byte[] merges, IReadOnlyDictionary<string, int> specialTokens,
        string endOfTextToken, string? unknownToken = null)
    {
        ArgumentNullException.ThrowIfNull(vocabularyJson);
        ArgumentNullException.ThrowIfNull(merges);
        ArgumentNullException.ThrowIfNull(specialTokens);
        int endOfText = SpecialId(specialTokens, endOfTextToken, nameof(specialTokens));
        var specials = new Dictionary<string, int>(specialTokens);
        using var vocabulary = new MemoryStream(vocabularyJson, writable: false);
        using var mergeStream = new MemoryStream(merges, writable: false);
        var tokenizer = BpeTokenizer.Create(vocabulary, mergeStream, PreTokenizer.CreateWhiteSpace(specials), normalizer: null,
            specials, unknownToken);
        int size = Math.Max(tokenizer.Vocabulary.Values.DefaultIfEmpty(-1).Max(), specials.Values.Max()) + 1;
        var parameters = new Dictionary<string, string>
        {
            ["type"] = "bpe",
            ["vocabulary"] = Convert.ToBase64String(vocabularyJson),
            ["merges"] = Convert.ToBase64String(merges),
            ["specialTokens"] = JsonSerializer.Serialize(specials),
            ["endOfText"] = endOfTextToken,
        };
        if (unknownToken is not null) parameters["unknownToken"] = unknownToken;
        return new TokenizerAdapter(tokenizer, size, endOfText, null, specials.Keys, parameters);
    }

    /// <summary>A SentencePiece tokenizer (Llama, Mistral, T5 and others) from its <c>.model</c> file; generation ends at its end-of-sentence token.</summary>
    /// <param name="modelFile">The bytes of the SentencePiece <c>.model</c> file (a <c>ModelProto</c>).</param>
    /// <returns>The tokenizer.</returns>
    public static TokenizerAdapter SentencePiece(byte[] modelFile)
    {
        ArgumentNullException.ThrowIfNull(modelFile);
        using var model = new MemoryStream(modelFile, writable: false);
        var tokenizer = SentencePieceTokenizer.Create(model, addBeginningOfSentence: false, addEndOfSentence: false);
        return FromSentencePiece(tokenizer, new Dictionary<string, string>
        {
            ["type"] = "sentencepiece",
            ["model"] = Convert.ToBase64String(modelFile),
        });
    }

    /// <summary>A SentencePiece unigram tokenizer from its pieces in memory (what a <c>.model</c> file lists); generation ends at the end-of-sentence piece (<c>&lt;/s&gt;</c>).</summary>
    /// <param name="pieces">The pieces and their scores; a piece's position is its id.</param>
    /// <param name="unknownId">The id of the unknown piece (<c>&lt;unk&gt;</c>).</param>
    /// <param name="byteFallback">Whether characters without a piece become byte pieces (<c>&lt;0x41&gt;</c>) rather than the unknown piece.</param>
    /// <returns>The tokenizer.</returns>
    public static TokenizerAdapter SentencePiece(IReadOnlyList<KeyValuePair<string, float>> pieces, int unknownId, bool byteFallback = false)
    {
        ArgumentNullException.ThrowIfNull(pieces);
        var tokenizer = SentencePieceTokenizer.Create(pieces.Select(p => (p.Key, p.Value)), unknownId, addBeginningOfSentence: false,
            addEndOfSentence: false, precompiledCharsMap: default, addDummyPrefix: true, escapeWhiteSpaces: true,
            treatWhitespaceAsSuffix: false, byteFallback: byteFallback, specialTokens: null);
        return FromSentencePiece(tokenizer, new Dictionary<string, string>
        {
            ["type"] = "sentencepiece-pieces",
            ["pieces"] = JsonSerializer.Serialize(pieces.Select(p => new object[] { p.Key, p.Value })),
            ["unknownId"] = unknownId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["byteFallback"] = byteFallback ? "true" : "false",
        });
    }

    /// <summary>A BERT WordPiece tokenizer from its <c>vocab.txt</c> (one token per line, the line number is its id); generation and document separation use <c>[SEP]</c>, padding <c>[PAD]</c>.</summary>
    /// <param name="vocabularyFile">The bytes of <c>vocab.txt</c>.</param>
    /// <param name="lowerCase">Whether text is lower-cased first (uncased BERT models).</param>
    /// <returns>The tokenizer.</returns>
    public static TokenizerAdapter Bert(byte[] vocabularyFile, bool lowerCase = true)
    {
        ArgumentNullException.ThrowIfNull(vocabularyFile);
        using var vocabulary = new MemoryStream(vocabularyFile, writable: false);
        var tokenizer = BertTokenizer.Create(vocabulary, new BertOptions { LowerCaseBeforeTokenization = lowerCase });
        int size = Encoding.UTF8.GetString(vocabularyFile).Split('\n').Count(line => line.TrimEnd('\r').Length > 0);
        return new TokenizerAdapter(tokenizer, size, tokenizer.SeparatorTokenId, tokenizer.PaddingTokenId,
            [tokenizer.ClassificationToken, tokenizer.SeparatorToken, tokenizer.PaddingToken, tokenizer.MaskingToken, tokenizer.UnknownToken],
            new Dictionary<string, string>
            {
                ["type"] = "bert",
                ["vocabulary"] = Convert.ToBase64String(vocabularyFile),
                ["lowerCase"] = lowerCase ? "true" : "false",
            },
            text => tokenizer.EncodeToIds(text, addSpecialTokens: false));
    }

    /// <summary>
    /// Uses a tokenizer built some other way. Models using it train and generate, but cannot be saved: build the
    /// tokenizer with <see cref="Tiktoken"/>, <see cref="Bpe"/>, <see cref="SentencePiece(byte[])"/> or <see cref="Bert"/>
    /// from its files to save them.
    /// </summary>
    /// <param name="tokenizer">The tokenizer.</param>
    /// <param name="vocabularySize">Number of ids it can produce (every id is below it).</param>
    /// <param name="endOfTextId">The id that separates documents and ends generation.</param>
    /// <param name="padId">The padding id, or null.</param>
    /// <returns>The adapter.</returns>
    public static TokenizerAdapter Wrap(Tokenizer tokenizer, int vocabularySize, int endOfTextId, int? padId = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabularySize);
        return new TokenizerAdapter(tokenizer, vocabularySize, endOfTextId, padId, [], stored: null);
    }

    /// <inheritdoc />
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        // Cut the text inside every special token it spells, so no piece holds one whole and each is encoded as text.
        var cuts = new SortedSet<int>();
        foreach (var special in specialTexts)
        {
            for (int at = text.IndexOf(special, StringComparison.Ordinal); at >= 0; at = text.IndexOf(special, at + 1, StringComparison.Ordinal))
                cuts.Add(at + special.Length / 2);
        }
        if (cuts.Count == 0) return encode(text);
        var ids = new List<int>();
        int start = 0;
        foreach (int cut in cuts.Append(text.Length))
        {
            if (cut > start) ids.AddRange(encode(text[start..cut]));
            start = cut;
        }
        return ids;
    }

    /// <inheritdoc />
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return Tokenizer.Decode(ids);
    }

    /// <inheritdoc />
    public int CountBytes(string text) => Encoding.UTF8.GetByteCount(text);

    /// <inheritdoc />
    /// <exception cref="NotSupportedException">The adapter was made with <see cref="Wrap"/>: its vocabulary files are unknown.</exception>
    public TokenizerDescription Describe() => stored is not null
        ? new TokenizerDescription(Kind, stored)
        : throw new NotSupportedException(
            $"A model using a wrapped {Tokenizer.GetType().Name} cannot be saved: the tokenizer's vocabulary files are not known. " +
            $"Build it with {nameof(TokenizerAdapter)}.{nameof(Tiktoken)}, .{nameof(Bpe)}, .{nameof(SentencePiece)} or .{nameof(Bert)} " +
            "from its files so the model can store them.");

    internal static TokenizerAdapter FromDescription(TokenizerDescription description)
    {
        var p = description.Parameters;
        string Get(string name) => p.TryGetValue(name, out var value) && value is not null ? value
            : throw new ArgumentException($"The '{Kind}' tokenizer description has no '{name}' parameter.", nameof(description));
        byte[] Bytes(string name)
        {
            try { return Convert.FromBase64String(Get(name)); }
            catch (FormatException e) { throw new ArgumentException($"The '{name}' parameter of the '{Kind}' tokenizer is not base64.", nameof(description), e); }
        }
        Dictionary<string, int> Specials() => JsonSerializer.Deserialize<Dictionary<string, int>>(Get("specialTokens"))
            ?? throw new ArgumentException($"The 'specialTokens' parameter of the '{Kind}' tokenizer is empty.", nameof(description));
        try
        {
            return Rebuild();
        }
        catch (Exception e) when (e is not ArgumentException and not OutOfMemoryException)
        {
            // Whatever Microsoft.ML.Tokenizers throws for a malformed file: the model archive reports it as invalid.
            throw new ArgumentException($"The stored '{p.GetValueOrDefault("type")}' tokenizer files are invalid: {e.Message}", nameof(description), e);
        }

        TokenizerAdapter Rebuild() => Get("type") switch
        {
            "tiktoken" => Tiktoken(Bytes("vocabulary"), Get("pattern"), Specials(), Get("endOfText")),
            "bpe" => Bpe(Bytes("vocabulary"), Bytes("merges"), Specials(), Get("endOfText"), p.GetValueOrDefault("unknownToken")),
            "sentencepiece" => SentencePiece(Bytes("model")),
            "sentencepiece-pieces" => SentencePiece(
                JsonSerializer.Deserialize<JsonElement[][]>(Get("pieces"))!.Select(x => KeyValuePair.Create(x[0].GetString()!, x[1].GetSingle())).ToArray(),
                int.Parse(Get("unknownId"), System.Globalization.CultureInfo.InvariantCulture), Get("byteFallback") == "true"),
            "bert" => Bert(Bytes("vocabulary"), Get("lowerCase") == "true"),
            var type => throw new ArgumentException(
                $"Unknown '{Kind}' tokenizer type '{type}'; known types are tiktoken, bpe, sentencepiece, sentencepiece-pieces and bert.",
                nameof(description)),
        };
    }

    private static TokenizerAdapter FromSentencePiece(SentencePieceTokenizer tokenizer, Dictionary<string, string> stored)
    {
        int size = Math.Max(tokenizer.Vocabulary.Values.DefaultIfEmpty(-1).Max(),
            tokenizer.SpecialTokens?.Values.DefaultIfEmpty(-1).Max() ?? -1) + 1;
        if (tokenizer.EndOfSentenceId < 0)
            throw new ArgumentException("The SentencePiece vocabulary has no end-of-sentence piece (</s>); MemoryFormer needs one to end documents.");
        return new TokenizerAdapter(tokenizer, size, tokenizer.EndOfSentenceId, null,
            [tokenizer.BeginningOfSentenceToken, tokenizer.EndOfSentenceToken, .. tokenizer.SpecialTokens?.Keys ?? []], stored);
    }

    /// <summary>The largest rank in a <c>.tiktoken</c> file (lines of <c>base64-token rank</c>).</summary>
    private static int MaxTiktokenRank(byte[] vocabularyFile)
    {
        int max = -1;
        foreach (var line in Encoding.UTF8.GetString(vocabularyFile).Split('\n'))
        {
            int space = line.LastIndexOf(' ');
            if (space > 0 && int.TryParse(line.AsSpan(space + 1).TrimEnd('\r'), System.Globalization.NumberStyles.None,
                    System.Globalization.CultureInfo.InvariantCulture, out int rank))
                max = Math.Max(max, rank);
        }
        return max;
    }

    private static int SpecialId(IReadOnlyDictionary<string, int> specialTokens, string token, string parameter)
    {
        ArgumentException.ThrowIfNullOrEmpty(token);
        return specialTokens.TryGetValue(token, out int id) ? id
            : throw new ArgumentException($"The special tokens do not contain the end-of-text token '{token}'.", parameter);
    }
}
