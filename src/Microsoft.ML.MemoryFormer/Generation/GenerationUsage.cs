namespace Microsoft.ML.MemoryFormer.Generation;

/// <summary>
/// What one generation consumed and why it ended, filled in as it runs: pass a new one to
/// <c>MemoryFormerLanguageModelTransformer.Generate</c> or <c>GenerateStreaming</c> and read it when the text is complete (the
/// usage an LLM service reports beside its completion). The counts are the model's tokens, not a re-tokenization of the text.
/// </summary>
public sealed class GenerationUsage
{
    /// <summary>Tokens of the prompt the model saw (its tail that fits the context; an empty prompt counts its start token).</summary>
    public int PromptTokens { get; internal set; }

    /// <summary>Tokens sampled, the end-of-text token and the tokens of a matched stop sequence included.</summary>
    public int GeneratedTokens { get; internal set; }

    /// <summary>True when generation stopped at <see cref="GenerationOptions.MaxNewTokens"/> rather than at end-of-text or a stop sequence.</summary>
    public bool StoppedAtMaxNewTokens { get; internal set; }
}
