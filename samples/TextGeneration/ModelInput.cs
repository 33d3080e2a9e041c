namespace TextGeneration;

/// <summary>
/// One row of input, as Model Builder would generate it: <see cref="Text"/> is a training document (a chunk of the
/// book), <see cref="Prompt"/> is the text to continue when the trained model is used.
/// </summary>
public sealed class ModelInput
{
    /// <summary>A training document.</summary>
    public string Text { get; set; } = "";

    /// <summary>Text the model continues.</summary>
    public string Prompt { get; set; } = "";
}
