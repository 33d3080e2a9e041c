namespace Microsoft.ML.MemoryFormer.Tests.Text;

/// <summary>Real text with ASCII, accents, CJK, emoji (surrogate pairs, ZWJ sequences) and spacing.</summary>
internal static class SampleTexts
{
    public const string Mixed =
        "The quick brown fox jumps over the lazy dog. Ça coûte 12,50 € — naïve café!\n" +
        "日本語のテキストと中文文本。한국어도 있습니다.\n" +
        "Emoji: 😀👍🏽 👨‍👩‍👧‍👦 🇫🇷 and math: ∑ x² ≤ ∞.  Double  spaces,\ttabs and\r\nnewlines.";
}
