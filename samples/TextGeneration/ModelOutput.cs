namespace TextGeneration;

/// <summary>What the model adds to a row: the continuation of <see cref="Prompt"/>.</summary>
public sealed class ModelOutput
{
    /// <summary>The prompt, passed through.</summary>
    public string Prompt { get; set; } = "";

    /// <summary>The generated continuation (without the prompt).</summary>
    public string GeneratedText { get; set; } = "";
}
