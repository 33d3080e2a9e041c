namespace WebApi;

/// <summary>Answer of <c>POST /generate</c>.</summary>
/// <param name="Text">The continuation, without the prompt.</param>
/// <param name="Tokens">Tokens the model generated (its own count: the end-of-text token and a matched stop sequence included).</param>
public sealed record GenerateResponse(string Text, int Tokens);
