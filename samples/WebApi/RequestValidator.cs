using Microsoft.ML.MemoryFormer.Generation;

namespace WebApi;

/// <summary>
/// Checks <see cref="ClassifyRequest"/>s, <see cref="ExplainRequest"/>s and <see cref="GenerateRequest"/>s against <see cref="ServingOptions"/> and
/// the rules of <see cref="GenerationOptions"/>; every error names the field (camelCase, as in the JSON) and says
/// what is allowed.
/// </summary>
public static class RequestValidator
{
    private const int MaxStopLength = 64;
    private const int MaxErrors = 10;

    /// <summary>Errors of a classification request, by field; empty when it is valid.</summary>
    /// <param name="request">The request.</param>
    /// <param name="limits">The server's limits.</param>
    public static Dictionary<string, string[]> Validate(ClassifyRequest request, ServingOptions limits)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(limits);
        var errors = new Dictionary<string, string[]>();
        if (request.Texts is not { Length: > 0 } texts)
        {
            errors["texts"] = [$"Required: an array of 1 to {limits.MaxBatchSize} strings."];
            return errors;
        }
        if (texts.Length > limits.MaxBatchSize)
            errors["texts"] = [$"{texts.Length} texts in one request; at most {limits.MaxBatchSize} ({ServingOptions.Section}:MaxBatchSize). Split the batch."];
        for (int i = 0; i < texts.Length && errors.Count < MaxErrors; i++)
        {
            if (texts[i] is null)
                errors[$"texts[{i}]"] = ["Must be a string, not null."];
            else if (texts[i]!.Length > limits.MaxTextLength)
                errors[$"texts[{i}]"] = [$"{texts[i]!.Length} characters; at most {limits.MaxTextLength} ({ServingOptions.Section}:MaxTextLength)."];
        }
        return errors;
    }

    /// <summary>Errors of an explanation request, by field; empty when it is valid.</summary>
    /// <param name="request">The request.</param>
    /// <param name="limits">The server's limits.</param>
    public static Dictionary<string, string[]> Validate(ExplainRequest request, ServingOptions limits)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(limits);
        var errors = new Dictionary<string, string[]>();
        if (request.Text is null)
            errors["text"] = ["Required: the text to explain."];
        else if (request.Text.Length > limits.MaxTextLength)
            errors["text"] = [$"{request.Text.Length} characters; at most {limits.MaxTextLength} ({ServingOptions.Section}:MaxTextLength)."];
        if (request.MaxWords is { } n && (n < 1 || n > ExplainEndpoint.MaxWords))
            errors["maxWords"] = [$"{n} is outside 1..{ExplainEndpoint.MaxWords}."];
        return errors;
    }

    /// <summary>Errors of a generation request, by field, and the generation options it asks for when it is valid.</summary>
    /// <param name="request">The request.</param>
    /// <param name="limits">The server's limits.</param>
    /// <param name="defaults">The model's generation defaults (used for omitted fields).</param>
    public static (Dictionary<string, string[]> Errors, GenerationOptions? Options) Validate(
        GenerateRequest request, ServingOptions limits, GenerationOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(defaults);
        var errors = new Dictionary<string, string[]>();
        if (request.Prompt is null)
            errors["prompt"] = ["Required: the text to continue (may be empty)."];
        else if (request.Prompt.Length > limits.MaxPromptLength)
            errors["prompt"] = [$"{request.Prompt.Length} characters; at most {limits.MaxPromptLength} ({ServingOptions.Section}:MaxPromptLength)."];
        if (request.MaxNewTokens is { } n && (n < 1 || n > limits.MaxNewTokens))
            errors["maxNewTokens"] = [$"{n} is outside 1..{limits.MaxNewTokens} ({ServingOptions.Section}:MaxNewTokens)."];
        var stop = request.Stop ?? [];
        if (stop.Length > limits.MaxStopSequences)
            errors["stop"] = [$"{stop.Length} stop sequences; at most {limits.MaxStopSequences}."];
        for (int i = 0; i < stop.Length && errors.Count < MaxErrors; i++)
        {
            if (string.IsNullOrEmpty(stop[i]) || stop[i]!.Length > MaxStopLength)
                errors[$"stop[{i}]"] = [$"Must be a string of 1 to {MaxStopLength} characters."];
        }
        if (errors.Count > 0) return (errors, null);

        var options = defaults with
        {
            MaxNewTokens = Math.Min(request.MaxNewTokens ?? defaults.MaxNewTokens, limits.MaxNewTokens),
            Temperature = request.Temperature ?? defaults.Temperature,
            TopK = request.TopK ?? defaults.TopK,
            TopP = request.TopP ?? defaults.TopP,
            RepetitionPenalty = request.RepetitionPenalty ?? defaults.RepetitionPenalty,
            FrequencyPenalty = request.FrequencyPenalty ?? defaults.FrequencyPenalty,
            PresencePenalty = request.PresencePenalty ?? defaults.PresencePenalty,
            StopSequences = request.Stop is null ? defaults.StopSequences : [.. stop.Select(s => s!)],
            Seed = request.Seed ?? defaults.Seed,
        };
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            string field = e.ParamName is { Length: > 0 } p ? JsonName(p) : "options";
            errors[field == "stopSequences" ? "stop" : field] = [RuleOf(e)];
            return (errors, null);
        }
        return (errors, options);
    }

    // The rule without .NET's "(Parameter 'X')" and "Actual value was" suffixes.
    private static string RuleOf(ArgumentException e)
    {
        int end = e.Message.IndexOf(" (Parameter '", StringComparison.Ordinal);
        return end > 0 ? e.Message[..end] : e.Message;
    }

    private static string JsonName(string property) => char.ToLowerInvariant(property[0]) + property[1..];
}
