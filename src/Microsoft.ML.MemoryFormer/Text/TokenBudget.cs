namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// Encodes only as much of a long text as a token budget can use: the first <c>n</c> tokens (<see cref="Head"/>,
/// classification rows) or the last <c>n</c> (<see cref="Tail"/>, generation prompts). A 1 MB row then costs the
/// same as a short one instead of a full tokenization whose tokens are thrown away.
/// </summary>
/// <remarks>
/// Truncation policy: the text is first cut to a window of characters at the kept end, <see cref="CharactersPerToken"/>
/// per budget token (every tokenizer here makes at least one token per 4 UTF-16 characters on ordinary text, and the
/// byte-level one at least one per character); when the window yields fewer than budget + <see cref="Margin"/> tokens
/// it doubles, until the window is the whole text. The window never splits a surrogate pair. Texts shorter than the
/// window are encoded exactly as <see cref="ITextTokenizer.Encode"/> does. For longer ones the kept tokens are those of
/// the window, which equal the full encoding's except, rarely, when a single word longer than the margin straddles
/// the cut (a byte-pair merge may then differ inside that word).
/// </remarks>
internal static class TokenBudget
{
    /// <summary>Characters read per budget token in the first window.</summary>
    public const int CharactersPerToken = 8;

    /// <summary>Extra tokens the window must yield so that the word cut at its edge falls outside the kept tokens.</summary>
    public const int Margin = 16;

    /// <summary>The first tokens of <paramref name="text"/>, at most <paramref name="maxTokens"/>.</summary>
    public static IReadOnlyList<int> Head(ITextTokenizer tokenizer, string text, int maxTokens)
    {
        var ids = Encode(tokenizer, text, maxTokens, fromEnd: false);
        return ids.Count <= maxTokens ? ids : ids.Take(maxTokens).ToArray();
    }

    /// <summary>The last tokens of <paramref name="text"/>, at most <paramref name="maxTokens"/>.</summary>
    public static IReadOnlyList<int> Tail(ITextTokenizer tokenizer, string text, int maxTokens)
    {
        var ids = Encode(tokenizer, text, maxTokens, fromEnd: true);
        return ids.Count <= maxTokens ? ids : ids.Skip(ids.Count - maxTokens).ToArray();
    }

    /// <summary>Whether <see cref="Head"/> or <see cref="Tail"/> with <paramref name="maxTokens"/> encodes the whole of
    /// <paramref name="text"/> (its first window already covers it), so their tokens are the full encoding's.</summary>
    public static bool ReadsWholeText(string text, int maxTokens) => FirstWindow(maxTokens) >= text.Length;

    private static long FirstWindow(int maxTokens) => ((long)maxTokens + Margin) * CharactersPerToken;

    private static IReadOnlyList<int> Encode(ITextTokenizer tokenizer, string text, int maxTokens, bool fromEnd)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfNegative(maxTokens);
        long window = FirstWindow(maxTokens);
        while (true)
        {
            if (window >= text.Length) return tokenizer.Encode(text);
            var ids = tokenizer.Encode(Cut(text, (int)window, fromEnd));
            if (ids.Count >= maxTokens + Margin) return ids;
            window *= 2;
        }
    }

    /// <summary>The first or last <paramref name="length"/> characters, one shorter when that would split a surrogate pair.</summary>
    internal static string Cut(string text, int length, bool fromEnd)
    {
        if (fromEnd)
        {
            int start = text.Length - length;
            if (char.IsLowSurrogate(text[start]) && char.IsHighSurrogate(text[start - 1])) start++;
            return text[start..];
        }
        if (char.IsHighSurrogate(text[length - 1]) && char.IsLowSurrogate(text[length])) length--;
        return text[..length];
    }
}
