namespace WebApi;

/// <summary>Body of <c>POST /explain</c>: <c>{"text": "...", "maxWords": 64}</c>.</summary>
public sealed class ExplainRequest
{
    /// <summary>The text whose predicted class is explained (required; at most <see cref="ServingOptions.MaxTextLength"/> characters).</summary>
    public string? Text { get; set; }

    /// <summary>Most words explained, from the start of the text: 1 to <see cref="ExplainEndpoint.MaxWords"/> (default 64).</summary>
    public int? MaxWords { get; set; }
}
