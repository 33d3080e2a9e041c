namespace WebApi;

/// <summary>Answer of <c>POST /classify</c>: one prediction per text, in request order.</summary>
/// <param name="Predictions">The predictions.</param>
public sealed record ClassifyResponse(IReadOnlyList<ClassPrediction> Predictions);
