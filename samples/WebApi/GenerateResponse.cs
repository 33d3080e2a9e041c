namespace WebApi;

/// <summary>Answer of <c>POST /generate</c>.</summary>
/// <param name="Text">The continuation, without the prompt.</param>
/// <param name="Tokens">Its length in the model's tokens (the text encoded again).</param>
public sealed record GenerateResponse(string Text, int Tokens);
