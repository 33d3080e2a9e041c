using System.Text.Json.Serialization;

namespace Microsoft.ML.MemoryFormer.Generation;

/// <summary>
/// How text is generated: length, sampling (temperature, top-k, top-p, repetition, frequency and presence penalties),
/// stop sequences and seed.
/// Init-only with defaults; call <see cref="Validate"/> (generators do) to check the rules.
/// </summary>
/// <remarks>
/// Sampling order, as in Hugging Face transformers: repetition penalty (then the frequency and presence penalties),
/// then temperature, then top-k, then top-p, then a draw. <see cref="Temperature"/> = 0 takes the most likely token (greedy) and ignores top-k, top-p and the seed.
/// </remarks>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate after the prompt. Default 64; must be &gt; 0.</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Divides the logits before sampling: below 1 sharpens, above 1 flattens. Default 0.8; must be ≥ 0;
    /// 0 means greedy decoding (so does a temperature below float32's smallest normal number, 1.2e-38, where the float32 sampling
    /// arithmetic would divide by zero).</summary>
    public double Temperature { get; init; } = 0.8;

    /// <summary>Keeps only the <c>TopK</c> most likely tokens. Default 0 (off); must be ≥ 0.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: keeps the smallest set of most likely tokens whose probability reaches
    /// <c>TopP</c> (always at least one). Default 1.0 (off); must be in (0, 1].</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>CTRL-style penalty on tokens already in the prompt or output: positive logits are divided by it,
    /// negative ones multiplied. Default 1.0 (off); must be &gt; 0; above 1 discourages repetition.</summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>OpenAI-style frequency penalty: a token's logit is lowered by this much for each time the token already
    /// occurs in the generated text (the prompt does not count). Default 0 (off); must be finite; positive values
    /// discourage repeating the output verbatim, negative ones encourage it (OpenAI's API takes −2 to 2).
    /// A saved language model writes it only when set, so files without it read as before.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double FrequencyPenalty { get; init; }

    /// <summary>OpenAI-style presence penalty: a token's logit is lowered by this much once the token occurs in the
    /// generated text (the prompt does not count), however often. Default 0 (off); must be finite; positive values
    /// push towards new tokens (OpenAI's API takes −2 to 2). Saved like <see cref="FrequencyPenalty"/>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double PresencePenalty { get; init; }

    /// <summary>Generation stops when the text contains one of these; the stop sequence itself is not returned.
    /// Default empty; entries must be non-empty.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];

    /// <summary>Seed of the sampling generator; <see langword="null"/> takes the model's seed (from
    /// <c>MLContext.Seed</c>). Same seed, model and prompt give the same text on the same device.</summary>
    public int? Seed { get; init; }

    /// <summary>Checks every option against its rule.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A number is outside its range; the parameter name is the
    /// property's name.</exception>
    /// <exception cref="ArgumentException"><see cref="StopSequences"/> is null or holds a null or empty string.</exception>
    public void Validate()
    {
        if (MaxNewTokens <= 0)
        {
            throw OutOfRange(nameof(MaxNewTokens), MaxNewTokens, "must be greater than 0");
        }

        if (!(Temperature >= 0) || double.IsInfinity(Temperature))
        {
            throw OutOfRange(nameof(Temperature), Temperature, "must be a finite number >= 0 (0 means greedy)");
        }

        if (TopK < 0)
        {
            throw OutOfRange(nameof(TopK), TopK, "must be >= 0 (0 turns top-k off)");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw OutOfRange(nameof(TopP), TopP, "must be in (0, 1] (1 turns top-p off)");
        }

        if (!(RepetitionPenalty > 0) || double.IsInfinity(RepetitionPenalty))
        {
            throw OutOfRange(nameof(RepetitionPenalty), RepetitionPenalty, "must be a finite number > 0 (1 turns it off)");
        }

        if (!double.IsFinite(FrequencyPenalty))
        {
            throw OutOfRange(nameof(FrequencyPenalty), FrequencyPenalty, "must be a finite number (0 turns it off)");
        }

        if (!double.IsFinite(PresencePenalty))
        {
            throw OutOfRange(nameof(PresencePenalty), PresencePenalty, "must be a finite number (0 turns it off)");
        }

        if (StopSequences is null)
        {
            throw new ArgumentException($"{nameof(StopSequences)} must not be null; use an empty list.", nameof(StopSequences));
        }

        for (int i = 0; i < StopSequences.Count; i++)
        {
            if (string.IsNullOrEmpty(StopSequences[i]))
            {
                throw new ArgumentException($"{nameof(StopSequences)}[{i}] must be a non-empty string.", nameof(StopSequences));
            }
        }
    }

    private static ArgumentOutOfRangeException OutOfRange(string property, object value, string rule) =>
        new(property, value, $"{property} {rule}; it was {value}.");
}
