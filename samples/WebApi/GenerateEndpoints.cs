using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.ML.MemoryFormer.Generation;

namespace WebApi;

/// <summary>
/// <c>POST /generate</c> (the whole continuation as JSON) and <c>POST /generate/stream</c> (server-sent events, one
/// <c>data: {"text": "..."}</c> event per decoded piece, then <c>event: done</c> with the token count). Both hold a
/// <see cref="GenerationSlots"/> slot while they decode and pass the request's abort token into the generator, which
/// checks it between tokens: a client that goes away stops its generation within one token.
/// </summary>
public static class GenerateEndpoints
{
    /// <summary>Handles <c>POST /generate</c>.</summary>
    /// <param name="context">The request.</param>
    /// <param name="models">The loaded models.</param>
    /// <param name="slots">The generation slots.</param>
    /// <param name="counters">The serving counters.</param>
    /// <param name="options">The limits.</param>
    public static async Task<IResult> GenerateAsync(HttpContext context, ServedModels models, GenerationSlots slots,
        ServingCounters counters, IOptions<ServingOptions> options)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(slots);
        ArgumentNullException.ThrowIfNull(counters);
        ArgumentNullException.ThrowIfNull(options);
        var (prompt, generation, problem) = await ReadAsync(context, models, counters, options.Value);
        if (problem is not null) return problem;

        var aborted = context.RequestAborted;
        try
        {
            using var slot = await slots.AcquireAsync(aborted);
            counters.GenerationStarted();
            try
            {
                var usage = new GenerationUsage();                           // the model's own count, not a re-tokenization of the text
                string text = models.LanguageModel.Generate(prompt!, generation, usage, aborted);
                int tokens = usage.GeneratedTokens;
                counters.GenerationCompleted(tokens);
                return Results.Ok(new GenerateResponse(text, tokens));
            }
            catch (OperationCanceledException) when (aborted.IsCancellationRequested)
            {
                counters.GenerationCancelled();
                throw;
            }
            catch
            {
                counters.GenerationFailed();
                throw;
            }
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return Results.Empty;   // nobody is listening
        }
    }

    /// <summary>Handles <c>POST /generate/stream</c>.</summary>
    /// <param name="context">The request.</param>
    /// <param name="models">The loaded models.</param>
    /// <param name="slots">The generation slots.</param>
    /// <param name="counters">The serving counters.</param>
    /// <param name="options">The limits.</param>
    public static async Task StreamAsync(HttpContext context, ServedModels models, GenerationSlots slots,
        ServingCounters counters, IOptions<ServingOptions> options)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(slots);
        ArgumentNullException.ThrowIfNull(counters);
        ArgumentNullException.ThrowIfNull(options);
        var (prompt, generation, problem) = await ReadAsync(context, models, counters, options.Value);
        if (problem is not null)
        {
            await problem.ExecuteAsync(context);
            return;
        }

        var aborted = context.RequestAborted;
        IDisposable slot;
        try
        {
            slot = await slots.AcquireAsync(aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return;
        }
        using (slot)
        {
            counters.GenerationStarted();
            var response = context.Response;
            response.ContentType = "text/event-stream";
            response.Headers.CacheControl = "no-cache";
            response.Headers["X-Accel-Buffering"] = "no";
            var usage = new GenerationUsage();
            try
            {
                await response.StartAsync(aborted);
                await foreach (var piece in models.LanguageModel.GenerateStreaming(prompt!, generation, usage, aborted))
                    await WriteEventAsync(response, null, new { text = piece }, aborted);
                int tokens = usage.GeneratedTokens;
                await WriteEventAsync(response, "done", new { tokens }, aborted);
                counters.GenerationCompleted(tokens);
            }
            catch (Exception e) when (aborted.IsCancellationRequested && e is OperationCanceledException or IOException)
            {
                counters.GenerationCancelled();   // the client went away mid-stream
            }
            catch (Exception e)
            {
                counters.GenerationFailed();
                // Headers are sent: the status cannot change any more, so the stream ends with an error event.
                await WriteEventAsync(response, "error", new { title = "Generation failed", detail = e.Message }, CancellationToken.None);
            }
        }
    }

    private static async Task<(string? Prompt, GenerationOptions? Options, IResult? Problem)> ReadAsync(
        HttpContext context, ServedModels models, ServingCounters counters, ServingOptions limits)
    {
        var (request, problem) = await JsonRequestReader.ReadAsync<GenerateRequest>(context.Request, limits.MaxRequestBodyBytes);
        if (problem is not null)
        {
            counters.Rejected();
            return (null, null, problem);
        }
        var (errors, generation) = RequestValidator.Validate(request!, limits, models.LanguageModel.DefaultGenerationOptions);
        if (errors.Count > 0)
        {
            counters.Rejected();
            return (null, null, Results.ValidationProblem(errors, title: "Invalid generation request"));
        }
        return (request!.Prompt, generation, null);
    }

    private static async Task WriteEventAsync(HttpResponse response, string? eventName, object data, CancellationToken cancellationToken)
    {
        var payload = new StringBuilder();
        if (eventName is not null) payload.Append("event: ").Append(eventName).Append('\n');
        payload.Append("data: ").Append(JsonSerializer.Serialize(data, JsonRequestReader.Options)).Append("\n\n");
        await response.WriteAsync(payload.ToString(), cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }
}
