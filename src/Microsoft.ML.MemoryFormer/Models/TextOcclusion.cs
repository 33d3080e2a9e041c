namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// Word importance by occlusion for a <see cref="TextClassifierModel"/>: a row is scored as it is and once with each of
/// its words left out, all in one batched call, and a word's importance is how much the class's probability falls
/// without it (negative: the word speaks against the class). Model-agnostic and deterministic; it needs no gradient
/// through the sign hash, which has none.
/// </summary>
internal static class TextOcclusion
{
    /// <summary>A maximal run of non-white-space characters of the first text or of the second.</summary>
    public readonly record struct Word(int Start, int Length, bool InSecond);

    /// <summary>The class explained, its probability on the whole row, and each word with the fall in that probability
    /// when the word is left out.</summary>
    public sealed record Result(int Class, double Probability, IReadOnlyList<(Word Word, double Importance)> Words);

    /// <summary>The words of <paramref name="text"/>, in order.</summary>
    public static List<Word> Words(string text, bool inSecond)
    {
        var words = new List<Word>();
        for (int i = 0; i < text.Length;)
        {
            if (char.IsWhiteSpace(text[i])) { i++; continue; }
            int start = i;
            while (i < text.Length && !char.IsWhiteSpace(text[i])) i++;
            words.Add(new Word(start, i - start, inSecond));
        }
        return words;
    }

    /// <summary><paramref name="text"/> without <paramref name="word"/> and the white space after it (before it, for the last word).</summary>
    public static string Without(string text, Word word)
    {
        int end = word.Start + word.Length;
        while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
        int start = word.Start;
        if (end == text.Length)
            while (start > 0 && char.IsWhiteSpace(text[start - 1])) start--;
        return string.Concat(text.AsSpan(0, start), text.AsSpan(end));
    }

    /// <summary>
    /// Explains the row (<paramref name="text"/>, <paramref name="second"/>) for <paramref name="classIndex"/>, or for the
    /// predicted class when it is null. The first <paramref name="maxWords"/> words are explained (those of the first text
    /// first); a row costs one scoring call of that many rows plus one.
    /// </summary>
    public static Result Explain(TextClassifierModel model, string text, string? second, int? classIndex, int maxWords)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWords, 1);
        if (classIndex is int c && (c < 0 || c >= model.Classes))
            throw new ArgumentOutOfRangeException(nameof(classIndex), c, $"The model has {model.Classes} classes (0 to {model.Classes - 1}).");
        var words = Words(text, inSecond: false).Concat(second is null ? [] : Words(second, inSecond: true)).Take(maxWords).ToArray();
        var rows = new List<(string, string?)>(words.Length + 1) { (text, second) };
        rows.AddRange(words.Select(w => w.InSecond ? (text, Without(second!, w)) : (Without(text, w), second)));
        var logProbabilities = model.LogProbabilities(rows);                          // [1 + words][classes]
        var whole = logProbabilities[0];
        int target = classIndex ?? Array.IndexOf(whole, whole.Max());
        double probability = Math.Exp(whole[target]);
        return new Result(target, probability,
            words.Select((w, i) => (w, probability - Math.Exp(logProbabilities[i + 1][target]))).ToArray());
    }
}
