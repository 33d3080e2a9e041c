namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// What a GPT-NeoX checkpoint of the official MemoryFormer code does not record in its tensors. Shapes (vocabulary, width,
/// layers, τ, K, norm kind) are read from the tensors; attention heads and context length come from the checkpoint's
/// <c>args</c> when it has them (the official <c>save_ds_checkpoint</c> stores <c>num_attention_heads</c> and
/// <c>max_position_embeddings</c>), otherwise from here. Rotary settings and the norm epsilon come from the <c>args</c> when
/// they are recorded there (this library's export writes them) and the options below keep their defaults; otherwise from here,
/// and then they must match the YAML config the model was trained with.
/// </summary>
public sealed record GptNeoXImportOptions
{
    /// <summary><c>num-attention-heads</c>; null reads it from the checkpoint's <c>args</c>.</summary>
    public int? Heads { get; init; }

    /// <summary><c>max-position-embeddings</c> (or <c>seq-length</c>); null reads it from the checkpoint's <c>args</c>.</summary>
    public int? ContextLength { get; init; }

    /// <summary>The default of <see cref="RotaryFraction"/>.</summary>
    public const double DefaultRotaryFraction = 0.25;

    /// <summary>The default of <see cref="RotaryBase"/>.</summary>
    public const double DefaultRotaryBase = 10000;

    /// <summary><c>rotary-pct</c> (0.25 in the official configs); at its default a value recorded in the checkpoint's <c>args</c> wins.</summary>
    public double RotaryFraction { get; init; } = DefaultRotaryFraction;

    /// <summary><c>rotary_emb_base</c> (GPT-NeoX default 10000); at its default a value recorded in the checkpoint's <c>args</c> wins.</summary>
    public double RotaryBase { get; init; } = DefaultRotaryBase;

    /// <summary><c>rms_norm_epsilon</c> or <c>layernorm_epsilon</c>; null takes the checkpoint's <c>args</c> value, else GPT-NeoX's
    /// defaults (1e-8 for RMSNorm, 1e-5 for LayerNorm).</summary>
    public double? NormEpsilon { get; init; }
}
