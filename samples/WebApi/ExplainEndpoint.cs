using Microsoft.Extensions.Options;

namespace WebApi;

/// <summary>
/// <c>POST /explain</c>: why the served classifier gives a text its class — each word's importance by leave-one-out
/// occlusion (<c>MemoryFormerTextClassificationTransformer.Explain</c>, one batched scoring call of up to
/// <c>maxWords</c> + 1 rows, safe to call from many requests at once).
/// </summary>
public static class ExplainEndpoint
{
    /// <summary>The most words one request may ask to explain (each costs one more scored row).</summary>
    public const int MaxWords = 256;

    private const int DefaultWords = 64;

    /// <summary>Handles one request.</summary>
    /// <param name="context">The request.</param>
    /// <param name="models">The loaded models.</param>
    /// <param name="counters">The serving counters.</param>
    /// <param name="options">The limits.</param>
    public static async Task<IResult> HandleAsync(HttpContext context, ServedModels models, ServingCounters counters, IOptions<ServingOptions> options)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(counters);
        ArgumentNullException.ThrowIfNull(options);
        var (request, problem) = await JsonRequestReader.ReadAsync<ExplainRequest>(context.Request, options.Value.MaxRequestBodyBytes);
        if (problem is not null)
        {
            counters.Rejected();
            return problem;
        }
        var errors = RequestValidator.Validate(request!, options.Value);
        if (errors.Count > 0)
        {
            counters.Rejected();
            return Results.ValidationProblem(errors, title: "Invalid explanation request");
        }
        if (models.TextClassifier is not { } classifier)
            return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Nothing to explain",
                detail: "The served classifier holds no MemoryFormer text classifier, whose predictions /explain explains.");

        var why = classifier.Explain(request!.Text!, maxWords: request.MaxWords ?? DefaultWords);
        return Results.Ok(new ExplainResponse(why.ClassName, why.Probability,
            [.. why.Words.Select(w => new ExplainedWord(w.Word, w.Start, w.Importance))]));
    }
}
