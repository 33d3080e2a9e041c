using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Serving;

/// <summary>
/// N concurrent HTTP clients against the server for one phase: each sends its next request as soon as the previous
/// one ended, until the phase's time or request budget is spent. Every <c>abortEvery</c>-th stream asks for
/// <c>abortedTokens</c> tokens and is dropped by its client after three pieces, so the server must notice mid-generation; every 25th request of a phase is sent deliberately malformed (it must get 400).
/// </summary>
internal sealed class LoadRunner(HttpClient client, int classifyBatch, int maxNewTokens, int abortEvery, int abortedTokens)
{
    private const int MalformedEvery = 25;

    private static readonly string[] Sentences =
    [
        "rain is expected tonight", "the pizza tastes great", "our striker scored twice", "my card shows a new fee",
        "snow covers the hills", "the loan is due next month", "warm bread is served hot", "the final went to penalties",
        "a cold front is coming from the west", "the invoice needs a transfer", "the curry comes with rice", "the coach trains every morning",
    ];

    private long streamCount;

    /// <summary>Runs one phase and adds what its clients saw to <paramref name="stats"/>.</summary>
    public async Task RunAsync(PhaseStats stats, TimeSpan duration, int maxRequests)
    {
        long sent = 0;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, stats.Clients).Select(async c =>
        {
            var random = new Random(c * 7919 + (int)Interlocked.Read(ref streamCount));
            long n;
            while (watch.Elapsed < duration && (n = Interlocked.Increment(ref sent)) <= maxRequests)
            {
                if (n % MalformedEvery == 0)
                    await MalformedAsync(stats, n);
                else if (stats.Kind == LoadKind.Classify)
                    await ClassifyAsync(stats, random);
                else
                    await StreamAsync(stats, random);
            }
        }));
        stats.AddTime(watch.Elapsed);
    }

    private async Task ClassifyAsync(PhaseStats stats, Random random)
    {
        var texts = Enumerable.Range(0, classifyBatch).Select(_ => Sentences[random.Next(Sentences.Length)]).ToArray();
        long start = Stopwatch.GetTimestamp();
        try
        {
            using var response = await client.PostAsJsonAsync("classify", new { texts });
            var body = await response.Content.ReadAsStringAsync();
            if (response.StatusCode != HttpStatusCode.OK)
            {
                stats.Failed($"classify: {(int)response.StatusCode} {body}");
                return;
            }
            int predictions = JsonDocument.Parse(body).RootElement.GetProperty("predictions").GetArrayLength();
            if (predictions != texts.Length) stats.Failed($"classify: {predictions} predictions for {texts.Length} texts");
            else stats.Completed(Stopwatch.GetElapsedTime(start).TotalMilliseconds, texts.Length, null);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
        {
            stats.Failed($"classify: {e.GetType().Name}: {e.Message}");
        }
    }

    private async Task StreamAsync(PhaseStats stats, Random random)
    {
        bool abort = Interlocked.Increment(ref streamCount) % abortEvery == 0;
        var body = new { prompt = Sentences[random.Next(Sentences.Length)], maxNewTokens = abort ? abortedTokens : maxNewTokens, temperature = 0.8, seed = random.Next() };
        long start = Stopwatch.GetTimestamp();
        double? firstPiece = null;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "generate/stream") { Content = JsonContent.Create(body) };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                stats.Failed($"stream: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                return;
            }
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            int pieces = 0, tokens = -1;
            string? line, eventName = null;
            while ((line = await reader.ReadLineAsync()) is not null)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal)) eventName = line[7..];
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    if (eventName == "done") tokens = JsonDocument.Parse(line[6..]).RootElement.GetProperty("tokens").GetInt32();
                    else if (eventName == "error") break;
                    else if (++pieces == 1) firstPiece = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    eventName = null;
                    if (abort && pieces == 3)
                    {
                        stats.AbortedByClient();   // disposing the response mid-stream closes the connection
                        return;
                    }
                }
            }
            if (tokens < 0) stats.Failed($"stream: ended without a done event after {pieces} pieces");
            else stats.Completed(Stopwatch.GetElapsedTime(start).TotalMilliseconds, tokens, firstPiece);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException or JsonException)
        {
            stats.Failed($"stream: {e.GetType().Name}: {e.Message}");
        }
    }

    private async Task MalformedAsync(PhaseStats stats, long n)
    {
        string path = stats.Kind == LoadKind.Classify ? "classify" : "generate/stream";
        string json = (n / MalformedEvery % 2) == 0 ? "{\"texts\": [\"unterminated\"" : "{\"prompt\": \"a\", \"maxNewTokens\": -1}";
        try
        {
            using var content = new StringContent(json, Encoding.UTF8, "application/json");
            using var response = await client.PostAsync(new Uri(path, UriKind.Relative), content);
            await response.Content.ReadAsStringAsync();
            if (response.StatusCode == HttpStatusCode.BadRequest) stats.DeliberatelyMalformed();
            else stats.Failed($"malformed {path}: expected 400, got {(int)response.StatusCode}");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            stats.Failed($"malformed {path}: {e.GetType().Name}: {e.Message}");
        }
    }
}
