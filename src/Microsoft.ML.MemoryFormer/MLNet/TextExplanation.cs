namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Why a text classifier gave a row its class (<see cref="MemoryFormerTextClassificationTransformer.Explain"/>): the class
/// explained, its probability, and each word's importance: how much that probability falls when the row is scored
/// without the word (leave-one-out occlusion).
/// </summary>
/// <param name="ClassIndex">The class explained: the predicted one unless another was asked for (0-based; for binary
/// classification 1 is true).</param>
/// <param name="ClassName">The class's name: the label's key value, or "True"/"False" for binary classification.</param>
/// <param name="Probability">The class's probability on the whole row, as <c>Transform</c> scores it.</param>
/// <param name="Words">Each word explained, in the order of the text (the first text's words, then the second's).</param>
public sealed record TextExplanation(int ClassIndex, string ClassName, double Probability, IReadOnlyList<WordImportance> Words)
{
    /// <summary>The words that raise the class's probability most, most important first.</summary>
    /// <param name="count">How many at most.</param>
    public IEnumerable<WordImportance> Top(int count) => Words.OrderByDescending(w => w.Importance).Take(count);
}

/// <summary>One word of an explained row (<see cref="TextExplanation"/>).</summary>
/// <param name="Word">The word: a run of non-white-space characters, punctuation included.</param>
/// <param name="Start">Where it starts in its text (UTF-16 index).</param>
/// <param name="InSecondText">Whether it is a word of the row's second text.</param>
/// <param name="Importance">The class's probability on the whole row minus its probability without this word: positive
/// when the word supports the class, negative when it speaks against it.</param>
public readonly record struct WordImportance(string Word, int Start, bool InSecondText, double Importance);
