namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>
/// How a text longer than one window is cut into windows (⌈tokens ÷ (MaxTokensPerRow − 1)⌉ windows, each opened by the
/// start token), in training and in scoring alike; saved with the model. Rows that fit one window and sentence pairs
/// are cut the same way by every layout.
/// </summary>
public enum WindowLayout
{
    /// <summary>Consecutive full windows, the last moved back to end at the last kept token, overlapping its predecessor:
    /// every window full, but the overlapped tokens are read twice (the default before 2026-12-06, and the layout of models
    /// saved without one).</summary>
    LastMovedBack,

    /// <summary>Consecutive full windows and a shorter last one: no token read twice.</summary>
    ShortLast,

    /// <summary>Windows of equal length (± 1): no token read twice, and the shortest longest window (the default of
    /// <c>MemoryFormerTextClassificationOptions</c>).</summary>
    Even,
}
