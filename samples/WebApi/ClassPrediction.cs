using System.Text.Json.Serialization;

namespace WebApi;

/// <summary>The classifier's answer for one text.</summary>
/// <param name="Label">The most likely class.</param>
/// <param name="Scores">Every class's probability, by class name.</param>
/// <param name="OutOfScope">True when the largest probability is below <see cref="ServingOptions.OutOfScopeThreshold"/>; left out
/// of the answer when no threshold is configured.</param>
public sealed record ClassPrediction(string Label, IReadOnlyDictionary<string, float> Scores,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? OutOfScope = null);
