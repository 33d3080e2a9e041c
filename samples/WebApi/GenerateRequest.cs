namespace WebApi;

/// <summary>
/// Body of <c>POST /generate</c> and <c>POST /generate/stream</c>: the prompt and optional sampling settings; an
/// omitted setting takes the model's default (its saved <c>GenerationOptions</c>).
/// </summary>
public sealed class GenerateRequest
{
    /// <summary>Text to continue (required; may be empty).</summary>
    public string? Prompt { get; set; }

    /// <summary>Most tokens to generate: 1 to <see cref="ServingOptions.MaxNewTokens"/>.</summary>
    public int? MaxNewTokens { get; set; }

    /// <summary>Sampling temperature ≥ 0; 0 is greedy.</summary>
    public double? Temperature { get; set; }

    /// <summary>Top-k filter; 0 turns it off.</summary>
    public int? TopK { get; set; }

    /// <summary>Nucleus filter in (0, 1]; 1 turns it off.</summary>
    public double? TopP { get; set; }

    /// <summary>Repetition penalty &gt; 0; 1 turns it off.</summary>
    public double? RepetitionPenalty { get; set; }

    /// <summary>Frequency penalty (finite; OpenAI's API takes −2 to 2): lowers a token's logit per occurrence in the output; 0 turns it off.</summary>
    public double? FrequencyPenalty { get; set; }

    /// <summary>Presence penalty (finite): lowers a token's logit once it occurs in the output; 0 turns it off.</summary>
    public double? PresencePenalty { get; set; }

    /// <summary>Stop sequences (at most <see cref="ServingOptions.MaxStopSequences"/>, each 1 to 64 characters).</summary>
    public string?[]? Stop { get; set; }

    /// <summary>Sampling seed; the same seed, prompt and settings give the same text.</summary>
    public int? Seed { get; set; }
}
