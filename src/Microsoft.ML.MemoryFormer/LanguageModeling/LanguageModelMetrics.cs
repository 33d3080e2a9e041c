namespace Microsoft.ML.MemoryFormer.LanguageModeling;

/// <summary>
/// How well a language model predicts a text: cross-entropy per token, its perplexity, and bits per UTF-8 byte, the
/// measure that stays comparable across tokenizers (a byte-level and a GPT-2 model predict different units).
/// </summary>
/// <param name="Tokens">Predicted tokens (every token of the documents and one end-of-text per document).</param>
/// <param name="Bytes">UTF-8 bytes of the documents (end-of-text tokens hold no bytes).</param>
/// <param name="TotalNats">Sum over predicted tokens of −ln p(token | context).</param>
public sealed record LanguageModelMetrics(long Tokens, long Bytes, double TotalNats)
{
    /// <summary>Mean cross-entropy in nats per token: <see cref="TotalNats"/> / <see cref="Tokens"/>.</summary>
    public double LossNatsPerToken => TotalNats / Tokens;

    /// <summary>exp(<see cref="LossNatsPerToken"/>): the effective number of equally likely next tokens.</summary>
    public double Perplexity => Math.Exp(LossNatsPerToken);

    /// <summary>Bits per UTF-8 byte: <see cref="TotalNats"/> / ln 2 / <see cref="Bytes"/>.</summary>
    public double BitsPerByte => TotalNats / Math.Log(2) / Bytes;
}
