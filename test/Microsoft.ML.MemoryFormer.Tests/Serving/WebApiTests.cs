using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using WebApi;

namespace Microsoft.ML.MemoryFormer.Tests.Serving;

/// <summary>
/// samples/WebApi in-process (issue 23): concurrent classification and generation give exactly the models' own
/// answers, malformed and oversized requests get clear problem details, an aborted stream stops its generation, and
/// every engine and generation slot is given back.
/// </summary>
public sealed class WebApiTests(WebApiFactory app) : IClassFixture<WebApiFactory>, IDisposable
{
    private static readonly string[] Texts =
    [
        "rain is expected tonight", "the pizza tastes great", "our striker scored twice", "my card shows a new fee",
        "snow covers the hills", "the loan is due next month", "warm bread is served hot", "the final went to penalties",
        "", "zzz unknown words 123",
    ];

    private readonly HttpClient client = app.CreateClient();

    public void Dispose() => client.Dispose();

    [Fact]
    public async Task Concurrent_classification_batches_get_exactly_the_models_own_predictions_and_return_every_engine()
    {
        var expected = DirectPredictions();
        var before = app.Counters;
        var batches = Enumerable.Range(0, 16).Select(i => Enumerable.Range(0, 1 + i % WebApiFactory.MaxBatchSize)
            .Select(j => (i + 3 * j) % Texts.Length).ToArray()).ToArray();

        var answers = await Task.WhenAll(batches.Select(b => PostAsync("/classify", new { texts = b.Select(i => Texts[i]) })));

        for (int i = 0; i < batches.Length; i++)
        {
            Assert.Equal(HttpStatusCode.OK, answers[i].Status);
            var predictions = answers[i].Json.GetProperty("predictions").EnumerateArray().ToArray();
            Assert.Equal(batches[i].Length, predictions.Length);
            for (int j = 0; j < predictions.Length; j++)
            {
                var (label, scores) = expected[batches[i][j]];
                Assert.Equal(label, predictions[j].GetProperty("label").GetString());
                var served = predictions[j].GetProperty("scores").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetSingle());
                Assert.Equal(scores.Keys, served.Keys);
                foreach (var (name, score) in scores) Assert.Equal(score, served[name], 1e-6f);
            }
        }
        var during = app.Counters;
        Assert.Equal(before.EnginesRented + batches.Length, during.EnginesRented);
        Assert.Equal(0, during.EnginesInUse);

        // Sequential requests reuse the pooled engines instead of making new ones.
        for (int i = 0; i < 8; i++) Assert.Equal(HttpStatusCode.OK, (await PostAsync("/classify", new { texts = new[] { Texts[i] } })).Status);
        var after = app.Counters;
        Assert.Equal(during.EnginesCreated, after.EnginesCreated);
        Assert.Equal(0, after.EnginesInUse);
        Assert.Equal(before.TextsClassified + batches.Sum(b => b.Length) + 8, after.TextsClassified);
    }

    [Fact]
    public async Task Explain_answers_with_the_classifiers_label_and_probability_and_each_words_importance()
    {
        var expected = DirectPredictions();
        var answers = await Task.WhenAll(new[] { 0, 3, 6 }.Select(i => PostAsync("/explain", new { text = Texts[i] })));
        foreach (var (answer, i) in answers.Zip(new[] { 0, 3, 6 }))
        {
            Assert.Equal(HttpStatusCode.OK, answer.Status);
            var (label, scores) = expected[i];
            Assert.Equal(label, answer.Json.GetProperty("label").GetString());
            Assert.Equal(scores[label], answer.Json.GetProperty("probability").GetDouble(), 1e-5);
            var words = answer.Json.GetProperty("words").EnumerateArray().ToArray();
            Assert.Equal(Texts[i].Split(' '), words.Select(w => w.GetProperty("word").GetString()));
            Assert.All(words, w => Assert.InRange(w.GetProperty("importance").GetDouble(), -1, 1));
        }

        var limited = await PostAsync("/explain", new { text = Texts[1], maxWords = 2 });
        Assert.Equal(2, limited.Json.GetProperty("words").GetArrayLength());
        var bad = await PostAsync("/explain", new { text = Texts[1], maxWords = 0 });
        Assert.Equal(HttpStatusCode.BadRequest, bad.Status);
        Assert.Contains("1..256", bad.Json.GetProperty("errors").GetProperty("maxWords")[0].GetString());
        Assert.Equal(HttpStatusCode.BadRequest, (await PostAsync("/explain", new { texts = new[] { "x" } })).Status);   // a typo'd field
        AssertNothingHeld();
    }

    [Fact]
    public async Task Engines_the_pool_does_not_keep_are_disposed_without_disposing_the_shared_classifier()
    {
        var expected = DirectPredictions();
        var before = app.Counters;
        var leases = Enumerable.Range(0, 3).Select(_ => app.Engines.Rent()).ToArray();   // the pool keeps 1 idle engine
        foreach (var lease in leases) Assert.Equal(expected[0].Label, lease.Engine.Predict(new ClassifierInput { Text = Texts[0] }).PredictedLabel);
        foreach (var lease in leases) lease.Dispose();   // two of them are dropped and disposed
        Assert.True(app.Counters.EnginesCreated >= before.EnginesCreated + 2);

        var answer = await PostAsync("/classify", new { texts = new[] { Texts[1] } });
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Equal(expected[1].Label, answer.Json.GetProperty("predictions")[0].GetProperty("label").GetString());
        AssertNothingHeld();
    }

    [Fact]
    public async Task Plain_and_streamed_generation_under_concurrency_match_the_models_own_text()
    {
        using var lm = (MemoryFormerLanguageModelTransformer)new MLContext().Model.LoadChecked(app.LanguageModelPath, out _);
        string[] prompts = ["the team", "rain", "", "my card shows"];
        var options = lm.DefaultGenerationOptions with { MaxNewTokens = 24, Temperature = 0.9, TopK = 10, Seed = 11 };
        var usages = prompts.Select(_ => new GenerationUsage()).ToArray();
        var expected = prompts.Select((p, i) => lm.Generate(p, options, usages[i])).ToArray();
        var before = app.Counters;

        var plain = prompts.Select(p => PostAsync("/generate", new { prompt = p, maxNewTokens = 24, temperature = 0.9, topK = 10, seed = 11 }));
        var streamed = prompts.Select(p => StreamAsync(new { prompt = p, maxNewTokens = 24, temperature = 0.9, topK = 10, seed = 11 }));
        var plainAnswers = Task.WhenAll(plain);
        var streamAnswers = await Task.WhenAll(streamed);

        var answers = await plainAnswers;
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(HttpStatusCode.OK, answers[i].Status);
            Assert.Equal(expected[i], answers[i].Json.GetProperty("text").GetString());
            int tokens = usages[i].GeneratedTokens;                       // the model's count, not the text encoded again
            Assert.Equal(tokens, answers[i].Json.GetProperty("tokens").GetInt32());
            Assert.Equal(expected[i], string.Concat(streamAnswers[i].Pieces));
            Assert.Equal(tokens, streamAnswers[i].DoneTokens);
        }
        var after = app.Counters;
        Assert.Equal(before.GenerationsCompleted + 2 * prompts.Length, after.GenerationsCompleted);
        AssertNothingHeld();
    }

    [Fact]
    public async Task Malformed_and_oversized_requests_get_clear_problems_while_valid_ones_beside_them_succeed()
    {
        var before = app.Counters;
        string oversized = JsonSerializer.Serialize(new { texts = new[] { new string('a', WebApiFactory.MaxRequestBodyBytes) } });
        var bad = new (string Path, HttpContent Body, HttpStatusCode Status, string Expect)[]
        {
            ("/classify", Json("{\"texts\": [\"a\""), HttpStatusCode.BadRequest, "not a valid ClassifyRequest"),
            ("/classify", Json("{\"text\": [\"a\"]}"), HttpStatusCode.BadRequest, "'text' could not be mapped"),
            ("/classify", Json("{}"), HttpStatusCode.BadRequest, "\"texts\""),
            ("/classify", Json("null"), HttpStatusCode.BadRequest, "JSON null"),
            ("/classify", Json(JsonSerializer.Serialize(new { texts = Enumerable.Repeat("a", WebApiFactory.MaxBatchSize + 1) })),
                HttpStatusCode.BadRequest, $"at most {WebApiFactory.MaxBatchSize}"),
            ("/classify", Json(JsonSerializer.Serialize(new { texts = new[] { "ok", new string('b', WebApiFactory.MaxTextLength + 1) } })),
                HttpStatusCode.BadRequest, "texts[1]"),
            ("/classify", Json("{\"texts\": [\"a\", null]}"), HttpStatusCode.BadRequest, "texts[1]"),
            ("/classify", Json(oversized), HttpStatusCode.RequestEntityTooLarge, $"at most {WebApiFactory.MaxRequestBodyBytes} bytes"),
            ("/classify", new StringContent("{\"texts\": [\"a\"]}", Encoding.UTF8, "text/plain"), HttpStatusCode.UnsupportedMediaType, "application/json"),
            ("/generate", Json("{\"maxNewTokens\": 5}"), HttpStatusCode.BadRequest, "\"prompt\""),
            ("/generate", Json($"{{\"prompt\": \"a\", \"maxNewTokens\": {WebApiFactory.MaxNewTokens + 1}}}"), HttpStatusCode.BadRequest, "\"maxNewTokens\""),
            ("/generate", Json("{\"prompt\": \"a\", \"temperature\": -1}"), HttpStatusCode.BadRequest, "\"temperature\""),
            ("/generate", Json("{\"prompt\": \"a\", \"topP\": 0}"), HttpStatusCode.BadRequest, "\"topP\""),
            ("/generate", Json("{\"prompt\": \"a\", \"stop\": [\"\"]}"), HttpStatusCode.BadRequest, "stop[0]"),
            ("/generate/stream", Json("{\"prompt\": 5}"), HttpStatusCode.BadRequest, "not a valid GenerateRequest"),
            ("/generate/stream", Json("{\"prompt\": \"a\", \"topK\": -3}"), HttpStatusCode.BadRequest, "\"topK\""),
        };
        var badTasks = bad.Select(async b =>
        {
            using var response = await client.PostAsync(b.Path, b.Body);
            return (Status: response.StatusCode, Type: response.Content.Headers.ContentType?.MediaType, Body: await response.Content.ReadAsStringAsync());
        }).ToArray();
        var goodTasks = Enumerable.Range(0, 6).Select(i => i % 2 == 0
            ? PostAsync("/classify", new { texts = new[] { Texts[i] } })
            : PostAsync("/generate", new { prompt = Texts[i], maxNewTokens = 8 })).ToArray();

        var badAnswers = await Task.WhenAll(badTasks);
        for (int i = 0; i < bad.Length; i++)
        {
            Assert.True(bad[i].Status == badAnswers[i].Status, $"{bad[i].Path} {i}: {badAnswers[i].Status} {badAnswers[i].Body}");
            Assert.Equal("application/problem+json", badAnswers[i].Type);
            Assert.Contains(bad[i].Expect, badAnswers[i].Body, StringComparison.Ordinal);
        }
        Assert.All(await Task.WhenAll(goodTasks), a => Assert.Equal(HttpStatusCode.OK, a.Status));
        Assert.Equal(before.RejectedRequests + bad.Length, app.Counters.RejectedRequests);
        AssertNothingHeld();
    }

    [Fact]
    public async Task A_client_that_aborts_a_stream_stops_its_generation_and_frees_its_slot()
    {
        const int tokens = WebApiFactory.MaxNewTokens;
        using (var lm = (MemoryFormerLanguageModelTransformer)new MLContext().Model.LoadChecked(app.LanguageModelPath, out _))
        {
            // Precondition: left alone, this seeded generation runs its full length (no end-of-text), so a stream of
            // it that stops early was stopped by the server noticing the client had gone.
            var options = lm.DefaultGenerationOptions with { MaxNewTokens = tokens, Temperature = 1.0, Seed = 3 };
            Assert.Equal(tokens, lm.Tokenizer.Encode(lm.Generate("the team", options)).Count);
        }
        var before = app.Counters;
        using var cancel = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/generate/stream")
        {
            Content = JsonContent.Create(new { prompt = "the team", maxNewTokens = tokens, temperature = 1.0, seed = 3 }),
        };
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));
            string? line;
            while ((line = await reader.ReadLineAsync(cancel.Token)) is not null && !line.StartsWith("data:", StringComparison.Ordinal))
            {
            }
            Assert.NotNull(line);   // one piece arrived: the generation is running
            await cancel.CancelAsync();
        }

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((app.Counters.GenerationsCancelled == before.GenerationsCancelled || app.Counters.GenerationsRunning > 0) && DateTime.UtcNow < deadline)
            await Task.Delay(20);
        var after = app.Counters;
        Assert.Equal(before.GenerationsCancelled + 1, after.GenerationsCancelled);
        Assert.Equal(before.GenerationsCompleted, after.GenerationsCompleted);
        Assert.Equal(before.GenerationsFailed, after.GenerationsFailed);
        AssertNothingHeld();

        // The server goes on serving.
        var health = await client.GetFromJsonAsync<JsonElement>("/health");
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.Equal(4, health.GetProperty("classes").GetArrayLength());
    }

    [Fact]
    public async Task The_out_of_scope_flag_follows_the_configured_threshold_and_is_left_out_without_one()
    {
        var expected = DirectPredictions();
        var batch = Enumerable.Range(0, WebApiFactory.MaxBatchSize).ToArray();
        var confidences = batch.Select(i => expected[i].Scores.Values.Max()).ToArray();
        float threshold = confidences.Order().ElementAt(batch.Length / 2);   // half the texts in scope, half out
        Assert.True(confidences.Min() < threshold, "precondition: the test texts' confidences differ");

        var plain = await PostAsync("/classify", new { texts = batch.Select(i => Texts[i]) });
        Assert.All(plain.Json.GetProperty("predictions").EnumerateArray(), p => Assert.False(p.TryGetProperty("outOfScope", out _)));

        using var judged = app.WithWebHostBuilder(b => b.UseSetting("Serving:OutOfScopeThreshold", threshold.ToString("R", CultureInfo.InvariantCulture)));
        using var judgedClient = judged.CreateClient();
        using var response = await judgedClient.PostAsJsonAsync("/classify", new { texts = batch.Select(i => Texts[i]) });
        var predictions = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("predictions").EnumerateArray().ToArray();
        for (int j = 0; j < batch.Length; j++)
        {
            Assert.Equal(expected[batch[j]].Label, predictions[j].GetProperty("label").GetString());
            Assert.Equal(confidences[j] < threshold, predictions[j].GetProperty("outOfScope").GetBoolean());   // at the threshold: in scope
        }

        using var invalid = app.WithWebHostBuilder(b => b.UseSetting("Serving:OutOfScopeThreshold", "1.5"));
        var error = Assert.Throws<InvalidOperationException>(() => invalid.CreateClient());
        Assert.Contains("Serving:OutOfScopeThreshold", error.Message, StringComparison.Ordinal);
    }

    private Dictionary<int, (string Label, Dictionary<string, float> Scores)> DirectPredictions()
    {
        var ml = new MLContext();
        var model = ml.Model.LoadChecked(app.ClassifierPath, out _);
        using var engine = ml.Model.CreatePredictionEngine<ClassifierInput, ClassifierOutput>(model);
        string[] classes = ["weather", "finance", "food", "sport"];
        var result = new Dictionary<int, (string, Dictionary<string, float>)>();
        for (int i = 0; i < Texts.Length; i++)
        {
            var output = engine.Predict(new ClassifierInput { Text = Texts[i] });
            result[i] = (output.PredictedLabel, classes.Select((c, k) => (c, k)).ToDictionary(x => x.c, x => output.Score[x.k]));
        }
        (model as IDisposable)?.Dispose();
        return result;
    }

    private void AssertNothingHeld()
    {
        var counters = app.Counters;
        Assert.Equal(0, counters.EnginesInUse);
        Assert.Equal(0, counters.GenerationsRunning);
        Assert.Equal(0, app.SlotsInUse);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private async Task<(HttpStatusCode Status, JsonElement Json)> PostAsync(string path, object body)
    {
        using var response = await client.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length > 0 ? JsonDocument.Parse(text).RootElement.Clone() : default);
    }

    private async Task<(List<string> Pieces, int DoneTokens)> StreamAsync(object body)
    {
        using var response = await client.PostAsJsonAsync("/generate/stream", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var pieces = new List<string>();
        int done = -1;
        string? eventName = null;
        foreach (var line in (await response.Content.ReadAsStringAsync()).Split('\n'))
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) eventName = line["event: ".Length..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                var data = JsonDocument.Parse(line["data: ".Length..]).RootElement;
                if (eventName == "done") done = data.GetProperty("tokens").GetInt32();
                else pieces.Add(data.GetProperty("text").GetString()!);
                eventName = null;
            }
        }
        return (pieces, done);
    }
}
