namespace WebApi;

/// <summary>One demo sentence and its topic.</summary>
public sealed class DemoRow
{
    /// <summary>The topic (weather, finance, food, sport).</summary>
    public string Label { get; set; } = "";

    /// <summary>The sentence.</summary>
    public string Text { get; set; } = "";
}
