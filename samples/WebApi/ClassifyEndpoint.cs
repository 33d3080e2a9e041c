using Microsoft.Extensions.Options;

namespace WebApi;

/// <summary><c>POST /classify</c>: a batch of texts → a label and class probabilities per text.</summary>
public static class ClassifyEndpoint
{
    /// <summary>Handles one request with an engine rented from the pool for the whole batch.</summary>
    /// <param name="context">The request.</param>
    /// <param name="models">The loaded models (class names).</param>
    /// <param name="engines">The engine pool.</param>
    /// <param name="counters">The serving counters.</param>
    /// <param name="options">The limits.</param>
    public static async Task<IResult> HandleAsync(HttpContext context, ServedModels models, ClassifierEnginePool engines,
        ServingCounters counters, IOptions<ServingOptions> options)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(engines);
        ArgumentNullException.ThrowIfNull(counters);
        ArgumentNullException.ThrowIfNull(options);
        var limits = options.Value;
        var (request, problem) = await JsonRequestReader.ReadAsync<ClassifyRequest>(context.Request, limits.MaxRequestBodyBytes);
        if (problem is not null)
        {
            counters.Rejected();
            return problem;
        }
        var errors = RequestValidator.Validate(request!, limits);
        if (errors.Count > 0)
        {
            counters.Rejected();
            return Results.ValidationProblem(errors, title: "Invalid classification request");
        }

        var texts = request!.Texts!;
        var aborted = context.RequestAborted;
        var predictions = new ClassPrediction[texts.Length];
        using (var lease = engines.Rent())
        {
            var input = new ClassifierInput();
            for (int i = 0; i < texts.Length; i++)
            {
                if (aborted.IsCancellationRequested) return Results.Empty;   // the client left: stop scoring
                input.Text = texts[i]!;
                var output = lease.Engine.Predict(input);
                predictions[i] = ToPrediction(output, models.ClassNames, limits.OutOfScopeThreshold);
            }
        }
        counters.Classified(texts.Length);
        return Results.Ok(new ClassifyResponse(predictions));
    }

    private static ClassPrediction ToPrediction(ClassifierOutput output, IReadOnlyList<string> classNames, float outOfScopeThreshold)
    {
        var scores = new Dictionary<string, float>(classNames.Count);
        for (int c = 0; c < classNames.Count && c < output.Score.Length; c++) scores[classNames[c]] = output.Score[c];
        // EvaluateOutOfScope's rule: in scope when the largest probability is at least the threshold (a NaN score is not).
        bool? outOfScope = outOfScopeThreshold > 0 ? !(output.Score.Max() >= outOfScopeThreshold) : null;
        return new ClassPrediction(output.PredictedLabel, scores, outOfScope);
    }
}
