namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>
/// Small MemoryFormer architectures for tables (one token per feature slot, so sequences are short and rows many).
/// The feature count sets the context length when a trainer builds the model; the vocabulary is unused.
/// Rotary positions are off: slot identity comes from each slot's own tokenizer weights, not from its position.
/// </summary>
public static class TabularPresets
{
    /// <summary>d = 64, 2 blocks, 4 heads, τ = 8 (K = 8 tables of 256 rows): the default, for up to ~100 slots on a CPU
    /// (τ = 8 measured ~1.4× faster than τ = 4 at 108 slots: half the tables to gather from).</summary>
    public static MemoryFormerConfig Small { get; } = new()
    {
        VocabularySize = 1, ContextLength = 2, Width = 64, Layers = 2, Heads = 4, BitsPerChunk = 8, RotaryFraction = 0,
        Dropout = 0.1,
    };

    /// <summary>d = 128, 3 blocks, 8 heads, τ = 8 (K = 16 tables of 256 rows). On adult (PLE, one-hot groups, 4 epochs)
    /// it measured 0.8717 ± 0.0020 accuracy over three seeds against Small's 0.8682 ± 0.0019, at roughly twice the
    /// training time (docs/benchmarks.md, "Tabular: adult, round 4").</summary>
    public static MemoryFormerConfig Medium { get; } = Small with { Width = 128, Layers = 3, Heads = 8 };

    /// <summary>d = 256, 4 blocks, 8 heads, τ = 8 (K = 32 tables of 256 rows). On adult (PLE, one-hot groups, 4 epochs,
    /// one thread) it measured 0.8719 ± 0.0021 accuracy over five seeds against Medium's 0.8708 ± 0.0014 over eight, at
    /// 2–2.5 times Medium's training time (docs/benchmarks.md, "Tabular: adult, round 5").</summary>
    public static MemoryFormerConfig Large { get; } = Small with { Width = 256, Layers = 4, Heads = 8 };
}
