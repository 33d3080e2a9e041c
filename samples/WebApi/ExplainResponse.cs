namespace WebApi;

/// <summary>Answer of <c>POST /explain</c>: the predicted class, its probability and each word's importance.</summary>
/// <param name="Label">The predicted class.</param>
/// <param name="Probability">Its probability on the whole text.</param>
/// <param name="Words">Each word explained, in text order.</param>
public sealed record ExplainResponse(string Label, double Probability, IReadOnlyList<ExplainedWord> Words);

/// <summary>One word of an explained text.</summary>
/// <param name="Word">The word (a run of non-white-space characters).</param>
/// <param name="Start">Its character index in the text.</param>
/// <param name="Importance">How much the class's probability falls when the word is left out (negative: it speaks against the class).</param>
public sealed record ExplainedWord(string Word, int Start, double Importance);
