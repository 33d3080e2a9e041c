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
}
