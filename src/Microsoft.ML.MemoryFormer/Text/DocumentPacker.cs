namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// Tokenizes documents into one token stream for language-model training, with the end-of-text id after every
/// document (so the model learns where a document ends and that the next one is unrelated).
/// </summary>
internal sealed class DocumentPacker
{
    private readonly ITextTokenizer _tokenizer;

    /// <param name="tokenizer">Tokenizer for the documents.</param>
    public DocumentPacker(ITextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
    }

    /// <summary>Tokenizes and joins <paramref name="documents"/>: <c>doc₀ EOT doc₁ EOT … docₙ EOT</c>.</summary>
    /// <param name="documents">The documents; empty ones are skipped.</param>
    /// <returns>The token stream.</returns>
    public int[] Join(IEnumerable<string> documents)
    {
        ArgumentNullException.ThrowIfNull(documents);
        var stream = new List<int>();
        foreach (string document in documents)
        {
            if (string.IsNullOrEmpty(document))
            {
                continue;
            }

            stream.AddRange(_tokenizer.Encode(document));
            stream.Add(_tokenizer.EndOfTextId);
        }

        return [.. stream];
    }

    /// <summary>Joins <paramref name="documents"/> and cuts the stream into training windows of
    /// <paramref name="contextLength"/> + 1 tokens.</summary>
    /// <param name="documents">The documents.</param>
    /// <param name="contextLength">Tokens the model sees at once (T).</param>
    /// <returns>The windows.</returns>
    public TokenWindows Pack(IEnumerable<string> documents, int contextLength) => new(Join(documents), contextLength);
}
