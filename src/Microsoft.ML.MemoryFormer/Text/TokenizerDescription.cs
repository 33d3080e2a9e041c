using System.Text.Json;

namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// What a saved model stores about its tokenizer: a kind (for example <c>"byte-level"</c> or <c>"gpt2"</c>) and
/// string parameters. Round-trips through JSON with <see cref="ToJson"/> and <see cref="FromJson"/>.
/// </summary>
/// <param name="Kind">Which tokenizer implementation to build.</param>
/// <param name="Parameters">Implementation-specific settings; empty when the kind needs none.</param>
public sealed record TokenizerDescription(string Kind, IReadOnlyDictionary<string, string> Parameters)
{
    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>Serialises this description as JSON, for example <c>{"kind":"gpt2","parameters":{}}</c>.</summary>
    /// <returns>The JSON text.</returns>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads a description written by <see cref="ToJson"/>.</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The description.</returns>
    /// <exception cref="ArgumentException">The JSON does not hold a description with a kind.</exception>
    public static TokenizerDescription FromJson(string json)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(json);
        TokenizerDescription? description;
        try
        {
            description = JsonSerializer.Deserialize<TokenizerDescription>(json, JsonOptions);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"The text is not a tokenizer description's JSON: {e.Message}", nameof(json), e);
        }

        if (description is null || string.IsNullOrEmpty(description.Kind))
        {
            throw new ArgumentException("The JSON does not describe a tokenizer: 'kind' is missing.", nameof(json));
        }

        return description with { Parameters = description.Parameters ?? new Dictionary<string, string>() };
    }
}
