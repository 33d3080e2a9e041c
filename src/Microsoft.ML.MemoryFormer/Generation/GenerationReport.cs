namespace Microsoft.ML.MemoryFormer.Generation;

/// <summary>What one streamed generation consumed and why it ended, filled in by <see cref="TextGenerator"/> as it runs.</summary>
internal sealed class GenerationReport
{
    /// <summary>Tokens of the prompt the model saw (its tail that fits the context; an empty prompt counts its start token).</summary>
    public int PromptTokens { get; set; }

    /// <summary>Tokens sampled, the end-of-text token and the tokens of a matched stop sequence included.</summary>
    public int GeneratedTokens { get; set; }

    /// <summary>True when generation stopped at <see cref="GenerationOptions.MaxNewTokens"/> rather than at end-of-text or a stop sequence.</summary>
    public bool ReachedLimit { get; set; }
}
