namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// Decodes generated token ids one at a time and returns only the newly completed text, so that the pieces
/// concatenate to <see cref="ITextTokenizer.Decode"/> of all ids.
/// </summary>
/// <remarks>
/// A token may end in the middle of a multi-byte UTF-8 character (byte-level tokens always split them; GPT-2 byte-pair
/// tokens sometimes do). Such a partial decode ends in U+FFFD; the detokenizer then holds the ids back until a later
/// token completes the character, or until <see cref="Flush"/>. Text is decoded from the window of ids since the
/// last emitted piece, which always starts on a character boundary; for byte-level and byte-pair tokenizers (whose
/// decoding is UTF-8 decoding of the concatenated token bytes) the windows' texts then concatenate to the full decode,
/// leading-space tokens included.
/// </remarks>
internal sealed class StreamingDetokenizer
{
    private const char Replacement = '\uFFFD';

    private readonly ITextTokenizer _tokenizer;
    private readonly List<int> _pending = [];

    /// <param name="tokenizer">The tokenizer whose ids are fed in.</param>
    public StreamingDetokenizer(ITextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
    }

    /// <summary>Whether ids are held back waiting for the rest of a character.</summary>
    public bool HasPending => _pending.Count > 0;

    /// <summary>Adds one id and returns the text it completes (possibly empty).</summary>
    /// <param name="id">The next generated id.</param>
    /// <returns>Text not returned before; empty while a character is incomplete.</returns>
    public string Push(int id)
    {
        _pending.Add(id);
        string text = _tokenizer.Decode(_pending);
        if (text.Length == 0 || text[^1] == Replacement)
        {
            return string.Empty;
        }

        // The window ends on a complete character, so decoding it alone equals its share of the full decode.
        _pending.Clear();
        return text;
    }

    /// <summary>Returns whatever is held back (an unfinished character decodes to U+FFFD) and resets.</summary>
    /// <returns>The remaining text.</returns>
    public string Flush()
    {
        if (_pending.Count == 0)
        {
            return string.Empty;
        }

        string text = _tokenizer.Decode(_pending);
        _pending.Clear();
        return text;
    }
}
