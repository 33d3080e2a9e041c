using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace WebApi;

/// <summary>
/// Reads a JSON request body under a size limit, the same way under Kestrel and under the test server: a body over
/// the limit gets 413 without being read past the limit, a body that is not JSON of the expected shape gets 400 with
/// the parser's position, a wrong content type 415. Unknown properties are refused, so a typo ("text" for "texts")
/// is reported rather than ignored.
/// </summary>
public static class JsonRequestReader
{
    /// <summary>The JSON settings of requests, responses and server-sent events (camelCase, case-insensitive names).</summary>
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Reads and deserializes the body.</summary>
    /// <typeparam name="T">The request type.</typeparam>
    /// <param name="request">The HTTP request.</param>
    /// <param name="maxBytes">Largest body accepted.</param>
    /// <returns>The value, or the problem to answer with (exactly one is not null).</returns>
    public static async Task<(T? Value, IResult? Problem)> ReadAsync<T>(HttpRequest request, long maxBytes)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!request.HasJsonContentType())
            return (null, Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type",
                $"Send the body as JSON with 'Content-Type: application/json' (got '{request.ContentType ?? "none"}')."));
        if (request.ContentLength > maxBytes)
            return (null, TooLarge(request.ContentLength.Value, maxBytes));

        var body = await ReadLimitedAsync(request.Body, maxBytes, request.HttpContext.RequestAborted).ConfigureAwait(false);
        if (body is null) return (null, TooLarge(null, maxBytes));
        try
        {
            var value = JsonSerializer.Deserialize<T>(body, Options);
            return value is null
                ? (null, Problem(StatusCodes.Status400BadRequest, "Malformed request", "The body is JSON null; send an object."))
                : (value, null);
        }
        catch (JsonException e)
        {
            return (null, Problem(StatusCodes.Status400BadRequest, "Malformed request",
                $"The body is not a valid {typeof(T).Name} JSON object: {e.Message}"));
        }
    }

    /// <summary>A problem-details answer with the given status.</summary>
    /// <param name="status">The HTTP status.</param>
    /// <param name="title">Short summary.</param>
    /// <param name="detail">What was wrong and how to fix it.</param>
    public static IResult Problem(int status, string title, string detail) =>
        Results.Problem(statusCode: status, title: title, detail: detail);

    private static IResult TooLarge(long? length, long maxBytes) =>
        Problem(StatusCodes.Status413PayloadTooLarge, "Request body too large",
            $"The body is {(length is { } l ? $"{l} bytes" : "larger than the limit")}; at most {maxBytes} bytes are accepted " +
            $"({ServingOptions.Section}:MaxRequestBodyBytes). Send fewer or shorter texts per request.");

    // Reads at most maxBytes + 1 bytes; null when the body is longer than maxBytes.
    private static async Task<byte[]?> ReadLimitedAsync(Stream body, long maxBytes, CancellationToken cancellationToken)
    {
        using var copy = new MemoryStream();
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int read;
            while ((read = await body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (copy.Length + read > maxBytes) return null;
                copy.Write(buffer, 0, read);
            }
            return copy.ToArray();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
