namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// Turns text into token ids and back for a MemoryFormer language model, and describes itself so that a saved model
/// can rebuild the same tokenizer (<see cref="Describe"/> / <see cref="FromDescription"/>).
/// </summary>
/// <remarks>
/// Implementations: <see cref="ByteLevelTokenizer"/> (UTF-8 bytes, no vocabulary file, lossless for any text) and
/// <see cref="Gpt2Tokenizer"/> (GPT-2 byte-pair encoding, offline) and <see cref="TokenizerAdapter"/> (any
/// Microsoft.ML.Tokenizers tokenizer: tiktoken, BPE, SentencePiece, WordPiece/BERT).
/// <see cref="Encode"/> treats its input as plain user text: it never produces <see cref="EndOfTextId"/> or
/// <see cref="PadId"/>, even when the text spells a special token. Callers add separators themselves.
/// </remarks>
public interface ITextTokenizer
{
    /// <summary>Number of ids the tokenizer can produce, special ids included; every id is in [0, VocabularySize).</summary>
    int VocabularySize { get; }

    /// <summary>
    /// Size the model's embedding and output layer should use: at least <see cref="VocabularySize"/>, possibly
    /// rounded up for faster matrix shapes. Ids in [VocabularySize, ModelVocabularySize) are never produced by
    /// <see cref="Encode"/> and must never be sampled.
    /// </summary>
    int ModelVocabularySize { get; }

    /// <summary>Id that separates documents and ends generation.</summary>
    int EndOfTextId { get; }

    /// <summary>
    /// Id used to pad a batch of unequal rows, or <see langword="null"/> when the tokenizer has no dedicated padding
    /// token; callers then pad with <see cref="EndOfTextId"/> and mask padded positions by length.
    /// </summary>
    int? PadId { get; }

    /// <summary>Encodes user text; special-token text in the input is encoded as ordinary text.</summary>
    /// <param name="text">The text to encode.</param>
    /// <returns>The token ids, none of them special.</returns>
    IReadOnlyList<int> Encode(string text);

    /// <summary>Decodes token ids to text. Incomplete or invalid UTF-8 byte sequences become U+FFFD.</summary>
    /// <param name="ids">Token ids, each in [0, VocabularySize).</param>
    /// <returns>The decoded text.</returns>
    string Decode(IEnumerable<int> ids);

    /// <summary>UTF-8 byte count of <paramref name="text"/>, the denominator of bits-per-byte.</summary>
    /// <param name="text">The text to measure.</param>
    /// <returns>The number of UTF-8 bytes.</returns>
    int CountBytes(string text);

    /// <summary>Describes this tokenizer so that <see cref="FromDescription"/> rebuilds an equivalent one.</summary>
    /// <returns>A serialisable description.</returns>
    TokenizerDescription Describe();

    /// <summary>Rebuilds a tokenizer from a description made by <see cref="Describe"/>.</summary>
    /// <param name="description">The saved description.</param>
    /// <returns>A tokenizer that encodes and decodes like the one described.</returns>
    /// <exception cref="ArgumentException">The kind is unknown or a parameter is invalid.</exception>
    static ITextTokenizer FromDescription(TokenizerDescription description)
    {
        ArgumentNullException.ThrowIfNull(description);
        if (description.Parameters is null)
            description = description with { Parameters = new Dictionary<string, string>() };      // as FromJson reads a missing one
        return description.Kind switch
        {
            ByteLevelTokenizer.Kind => ByteLevelTokenizer.FromDescription(description),
            Gpt2Tokenizer.Kind => Gpt2Tokenizer.FromDescription(description),
            TokenizerAdapter.Kind => TokenizerAdapter.FromDescription(description),
            _ => throw new ArgumentException(
                $"Unknown tokenizer kind '{description.Kind}'; known kinds are '{ByteLevelTokenizer.Kind}', '{Gpt2Tokenizer.Kind}' and '{TokenizerAdapter.Kind}'.",
                nameof(description)),
        };
    }
}
