using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// Turns a text (or a pair of texts) into the token row a classifier reads:
/// <c>[EOT] text</c> or <c>[EOT] first [EOT] second</c>, at most <see cref="MaxTokens"/> ids.
/// </summary>
/// <remarks>
/// Truncation policy: each text keeps its <em>first</em> tokens (the head), since the start of a message usually
/// carries its intent. For a pair, the longer text is shortened first, one token at a time, until both fit (BERT's
/// "longest first"). Only the head of a long text is tokenized (<see cref="TokenBudget.Head"/>), so a 1 MB row costs
/// about as much as a short one. The leading end-of-text id plays the role of a start token: it is what a pretrained language
/// model saw between documents, it makes first-token pooling meaningful, and it keeps an empty text a valid row.
/// <see cref="EncodeWindows"/> reads a long single text further: up to a bounded number of windows, each scored by the
/// classifier and pooled (see <see cref="Models.SequencePooling.MeanOverWindows"/>).
/// </remarks>
internal sealed class TextPairEncoder
{
    private readonly ITextTokenizer tokenizer;

    public TextPairEncoder(ITextTokenizer tokenizer, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 3);
        this.tokenizer = tokenizer;
        MaxTokens = maxTokens;
    }

    /// <summary>Longest row produced, start and separator tokens included.</summary>
    public int MaxTokens { get; }

    /// <summary>The id rows are padded with: the tokenizer's padding id, or end-of-text (masked out anyway).</summary>
    public int PadId => tokenizer.PadId ?? tokenizer.EndOfTextId;

    /// <summary>Encodes one row; <paramref name="second"/> is null for single-text rows.</summary>
    public int[] Encode(string text, string? second = null)
    {
        int budget = MaxTokens - 1 - (second is null ? 0 : 1);
        var a = TokenBudget.Head(tokenizer, text ?? "", budget);
        var b = second is null ? null : TokenBudget.Head(tokenizer, second, budget);
        int keepA = a.Count, keepB = b?.Count ?? 0;
        while (keepA + keepB > budget)
        {
            if (keepA >= keepB) keepA--;
            else keepB--;
        }
        var row = new int[1 + keepA + (b is null ? 0 : 1 + keepB)];
        row[0] = tokenizer.EndOfTextId;
        for (int i = 0; i < keepA; i++) row[1 + i] = a[i];
        if (b is null) return row;
        row[1 + keepA] = tokenizer.EndOfTextId;
        for (int i = 0; i < keepB; i++) row[2 + keepA + i] = b[i];
        return row;
    }

    /// <summary>
    /// Encodes one row as one or more windows of at most <see cref="MaxTokens"/> ids, each <c>[EOT] tokens</c>: a text
    /// longer than one window is cut into consecutive windows of <c>MaxTokens − 1</c> tokens (stride = window, no
    /// overlap), except that the last window is moved back to end at the text's last kept token, overlapping its
    /// predecessor, so that every window is full. At most <paramref name="maxWindows"/> windows: the first
    /// <c>maxWindows × (MaxTokens − 1)</c> tokens are kept (only those are tokenized, <see cref="TokenBudget.Head"/>).
    /// A row that fits one window, and every sentence pair (truncated as <see cref="Encode"/> does), is exactly
    /// <c>[Encode(text, second)]</c>.
    /// <paramref name="layout"/> other than <see cref="WindowLayout.LastMovedBack"/> cuts a long row without reading a token
    /// twice; a classifier is trained and scored with the same layout (<see cref="TextClassifierSettings.WindowLayout"/>).
    /// </summary>
    public int[][] EncodeWindows(string text, string? second, int maxWindows, WindowLayout layout = WindowLayout.LastMovedBack)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWindows, 1);
        if (second is not null || maxWindows == 1) return [Encode(text, second)];
        int perWindow = MaxTokens - 1;
        var ids = TokenBudget.Head(tokenizer, text ?? "", checked(perWindow * maxWindows));
        if (ids.Count <= perWindow)
        {
            // One window: Encode(text) is [EOT] + these ids whenever its own budget reads the whole text (then both are the full
            // encoding), so a short row is not tokenized a second time; a longer text of few tokens keeps the general path.
            return TokenBudget.ReadsWholeText(text ?? "", perWindow) ? [Window(ids, 0, ids.Count)] : [Encode(text ?? "")];
        }
        int count = (ids.Count + perWindow - 1) / perWindow;
        var windows = new int[count][];
        for (int w = 0; w < count; w++)
        {
            var (start, length) = Span(layout, w, count, ids.Count, perWindow);
            windows[w] = Window(ids, start, length);
        }
        return windows;
    }

    /// <summary>One window's row: <c>[EOT]</c> and <paramref name="length"/> ids from <paramref name="start"/>.</summary>
    private int[] Window(IReadOnlyList<int> ids, int start, int length)
    {
        var row = new int[1 + length];
        row[0] = tokenizer.EndOfTextId;
        for (int i = 0; i < length; i++) row[1 + i] = ids[start + i];
        return row;
    }

    /// <summary>Window w of <paramref name="count"/> over <paramref name="total"/> kept tokens: its first token and length.</summary>
    private static (int Start, int Length) Span(WindowLayout layout, int w, int count, int total, int perWindow)
    {
        switch (layout)
        {
            case WindowLayout.LastMovedBack:
                return (Math.Min(w * perWindow, total - perWindow), perWindow);
            case WindowLayout.ShortLast:
                return (w * perWindow, Math.Min(perWindow, total - (w * perWindow)));
            case WindowLayout.Even:
                int size = total / count, longer = total % count;                 // the first `longer` windows one token longer
                return ((w * size) + Math.Min(w, longer), size + (w < longer ? 1 : 0));
            default:
                throw new ArgumentOutOfRangeException(nameof(layout), layout, "Unknown window layout.");
        }
    }
}
