namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>How <see cref="TextPairEncoder.EncodeWindows"/> cuts a row longer than one window (⌈tokens ÷ (MaxTokens − 1)⌉
/// windows, each opened by the start token).</summary>
internal enum WindowLayout
{
    /// <summary>Consecutive full windows, the last moved back to end at the last kept token, overlapping its predecessor:
    /// every window full (the default; what the classifiers are trained with).</summary>
    LastMovedBack,

    /// <summary>Consecutive full windows and a shorter last one: no token read twice.</summary>
    ShortLast,

    /// <summary>Windows of equal length (± 1): no token read twice, and the shortest longest window.</summary>
    Even,
}
