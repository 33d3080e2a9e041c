namespace WebApi;

/// <summary>The classifier's input row: the one column it reads.</summary>
public sealed class ClassifierInput
{
    /// <summary>The text to classify.</summary>
    public string Text { get; set; } = "";
}
