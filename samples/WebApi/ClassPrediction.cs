namespace WebApi;

/// <summary>The classifier's answer for one text.</summary>
/// <param name="Label">The most likely class.</param>
/// <param name="Scores">Every class's probability, by class name.</param>
public sealed record ClassPrediction(string Label, IReadOnlyDictionary<string, float> Scores);
