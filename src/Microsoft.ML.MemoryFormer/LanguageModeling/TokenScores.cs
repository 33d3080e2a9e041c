namespace Microsoft.ML.MemoryFormer.LanguageModeling;

/// <summary>
/// How a language model reads one text token by token (<c>MemoryFormerLanguageModelTransformer.ScoreTokens</c>): each
/// token's log-probability given the text before it, for surprisal highlighting, ranking candidate texts, or spotting
/// the unusual part of a document.
/// </summary>
/// <param name="Tokens">The text's tokens in order; their <see cref="TokenLogProbability.Text"/> pieces concatenate to the text.</param>
/// <param name="Bytes">UTF-8 bytes of the text.</param>
public sealed record TokenScores(IReadOnlyList<TokenLogProbability> Tokens, long Bytes)
{
    /// <summary>log p(text | end-of-text) in nats: the sum of the tokens' log-probabilities.</summary>
    public double LogProbability => Tokens.Sum(t => t.LogProbability);

    /// <summary>Bits per UTF-8 byte of this text: −<see cref="LogProbability"/> / ln 2 / <see cref="Bytes"/> (0 for an empty text).</summary>
    public double BitsPerByte => Bytes == 0 ? 0 : -LogProbability / Math.Log(2) / Bytes;
}

/// <summary>One token of a scored text (<see cref="TokenScores"/>).</summary>
/// <param name="Id">The token id.</param>
/// <param name="Text">The text the token completes: empty for a token that ends inside a character (a byte of a
/// multi-byte UTF-8 character), whose text comes with the token that completes it.</param>
/// <param name="LogProbability">ln p(token | end-of-text and the tokens before it), ≤ 0.</param>
public readonly record struct TokenLogProbability(int Id, string Text, double LogProbability);
