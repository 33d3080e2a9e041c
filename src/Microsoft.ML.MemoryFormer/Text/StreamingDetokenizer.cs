namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// Decodes generated token ids one at a time and returns only the newly completed text, so that the pieces
/// concatenate to <see cref="ITextTokenizer.Decode"/> of all ids.
/// </summary>
/// <remarks>
/// <para>A token may end in the middle of a multi-byte UTF-8 character (byte-level tokens always split them; GPT-2 byte-pair
/// tokens sometimes do). Such a partial decode ends in U+FFFD; the detokenizer then holds the ids back until a later
/// token completes the character, or until <see cref="Flush"/>.</para>
/// <para>A window of new ids is decoded after up to <see cref="ContextIds"/> ids already emitted, and its text is what that
/// decode adds to the decode of the context alone. Tokenizers whose decoding depends on the neighbours need it:
/// SentencePiece drops the word-start space of the first piece it decodes, and WordPiece puts spaces only between
/// tokens, so windows decoded alone lose every word boundary. For byte-level and byte-pair tokenizers (UTF-8 decoding of
/// the concatenated token bytes) it equals decoding the window alone. Where a context's decode is not a prefix of the
/// longer one, the window is decoded alone, as before.</para>
/// </remarks>
internal sealed class StreamingDetokenizer
{
    private const char Replacement = '\uFFFD';

    /// <summary>Ids already emitted kept as left context (enough for a word boundary; the decode per token stays cheap).</summary>
    internal const int ContextIds = 8;

    private readonly ITextTokenizer _tokenizer;
    private readonly List<int> _pending = [];
    private readonly List<int> _context = [];
    private string _contextText = string.Empty;                                  // Decode(_context), kept from Emit to Emit

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
        string text = DecodePending();
        if (text.Length == 0 || text[^1] == Replacement)
        {
            return string.Empty;
        }

        Emit();
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

        string text = DecodePending();
        Emit();
        return text;
    }

    /// <summary>The text the pending ids add after the context.</summary>
    private string DecodePending()
    {
        if (_context.Count == 0)
        {
            return _tokenizer.Decode(_pending);
        }

        string both = _tokenizer.Decode([.. _context, .. _pending]);
        return both.StartsWith(_contextText, StringComparison.Ordinal) ? both[_contextText.Length..] : _tokenizer.Decode(_pending);
    }

    private void Emit()
    {
        _context.AddRange(_pending);
        _pending.Clear();
        if (_context.Count > ContextIds)
        {
            _context.RemoveRange(0, _context.Count - ContextIds);
        }

        _contextText = _tokenizer.Decode(_context);
    }
}
