using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Generation;

public sealed class MemoryFormerChatClientTests : IDisposable
{
    private static readonly ChatMessage[] Conversation = [new(ChatRole.System, "Be brief."), new(ChatRole.User, "Hi")];
    private const string Transcript = "System: Be brief.\nUser: Hi\nAssistant:";
    private static readonly string[] TemplateStops = ["\nUser:", "\nSystem:", "\nTool:"];

    private readonly LanguageModel model;
    private readonly TextGenerator generator;

    public MemoryFormerChatClientTests()
    {
        var tokenizer = new ByteLevelTokenizer();
        random.manual_seed(4);
        model = new LanguageModel(MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = 64 });
        generator = new TextGenerator(model, tokenizer, CPU, defaultSeed: 1);
    }

    public void Dispose() => model.Dispose();

    [Fact]
    public async Task Response_and_stream_are_the_generators_continuation_of_the_transcript_trimmed_alike()
    {
        using IChatClient client = new MemoryFormerChatClient(generator);
        var options = new ChatOptions { MaxOutputTokens = 12, Temperature = 0.7f, Seed = 11 };
        var response = await client.GetResponseAsync(Conversation, options);
        var expected = generator.Generate(Transcript,
            new GenerationOptions { MaxNewTokens = 12, Temperature = 0.7f, Seed = 11, StopSequences = TemplateStops });
        Assert.Equal(expected.Trim(), response.Text);
        Assert.Equal(ChatRole.Assistant, response.Messages[0].Role);

        var streamed = new StringBuilder();
        await foreach (var update in client.GetStreamingResponseAsync(Conversation, options)) streamed.Append(update.Text);
        Assert.Equal(response.Text, streamed.ToString());
    }

    [Fact]
    public async Task Frequency_and_presence_penalties_reach_the_generator()
    {
        using IChatClient client = new MemoryFormerChatClient(generator);
        var plain = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 24, Temperature = 0 });
        var penalized = await client.GetResponseAsync(Conversation,
            new ChatOptions { MaxOutputTokens = 24, Temperature = 0, FrequencyPenalty = 4f, PresencePenalty = 2f });

        var expected = generator.Generate(Transcript, new GenerationOptions
        {
            MaxNewTokens = 24, Temperature = 0, FrequencyPenalty = 4, PresencePenalty = 2, StopSequences = TemplateStops,
        });
        Assert.Equal(expected.Trim(), penalized.Text);
        Assert.NotEqual(plain.Text, penalized.Text);
    }

    [Fact]
    public async Task A_request_that_requires_a_tool_call_is_refused()
    {
        using IChatClient client = new MemoryFormerChatClient(generator);
        var tool = AIFunctionFactory.Create(() => "sunny", "weather");
        var error = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(Conversation,
            new ChatOptions { Tools = [tool], ToolMode = ChatToolMode.RequireAny, MaxOutputTokens = 4 }));
        Assert.Contains("ToolMode", error.Message, StringComparison.Ordinal);

        var offered = await client.GetResponseAsync(Conversation, new ChatOptions { Tools = [tool], MaxOutputTokens = 4, Seed = 1 });
        Assert.Equal(ChatRole.Assistant, offered.Messages[0].Role);                  // Auto: answered in text
    }

    [Fact]
    public async Task A_response_carries_ids_creation_time_model_and_token_usage()
    {
        using IChatClient client = new MemoryFormerChatClient(generator, modelId: "mf-nano");
        var before = DateTimeOffset.UtcNow;
        var response = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 10, Seed = 3 });
        var second = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 10, Seed = 3 });

        Assert.False(string.IsNullOrEmpty(response.ResponseId));
        Assert.NotEqual(response.ResponseId, second.ResponseId);
        Assert.Equal(response.ResponseId, response.Messages[0].MessageId);
        Assert.InRange(response.CreatedAt!.Value, before, DateTimeOffset.UtcNow);
        Assert.Equal("mf-nano", response.ModelId);
        Assert.Equal(Encoding.UTF8.GetByteCount(Transcript), response.Usage!.InputTokenCount); // byte-level: a token per byte
        Assert.InRange(response.Usage.OutputTokenCount!.Value, 1, 10);
        Assert.Equal(response.Usage.InputTokenCount + response.Usage.OutputTokenCount, response.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task Finish_reason_is_length_at_the_token_limit_and_stop_at_a_stop_sequence()
    {
        using IChatClient client = new MemoryFormerChatClient(generator);
        var limited = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 6, Seed = 5 });
        Assert.Equal(ChatFinishReason.Length, limited.FinishReason);
        Assert.Equal(6, limited.Usage!.OutputTokenCount);

        var raw = generator.Generate(Transcript, new GenerationOptions { MaxNewTokens = 24, Seed = 5, StopSequences = TemplateStops });
        Assert.True(raw.Length >= 6, $"the continuation '{raw}' is too short to pick a stop sequence from");
        var stopped = await client.GetResponseAsync(Conversation,
            new ChatOptions { MaxOutputTokens = 24, Seed = 5, StopSequences = [raw.Substring(4, 1)] });
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
        Assert.True(stopped.Usage!.OutputTokenCount < 24);
        Assert.Equal(raw[..raw.IndexOf(raw[4], StringComparison.Ordinal)].Trim(), stopped.Text);
    }

    [Fact]
    public async Task Stream_updates_share_the_ids_and_the_last_carries_finish_reason_and_usage()
    {
        using IChatClient client = new MemoryFormerChatClient(generator, modelId: "mf-nano");
        var options = new ChatOptions { MaxOutputTokens = 8, Seed = 2 };
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(Conversation, options)) updates.Add(update);

        Assert.True(updates.Count >= 2);
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());
        Assert.All(updates, u =>
        {
            Assert.Equal(updates[0].ResponseId, u.MessageId);
            Assert.Equal(updates[0].CreatedAt, u.CreatedAt);
            Assert.Equal("mf-nano", u.ModelId);
            Assert.Equal(ChatRole.Assistant, u.Role);
        });
        Assert.All(updates.SkipLast(1), u => Assert.Null(u.FinishReason));
        Assert.NotNull(updates[^1].FinishReason);
        Assert.Single(updates[^1].Contents.OfType<UsageContent>());

        // Microsoft.Extensions.AI's own aggregation of the stream gives the non-streaming response.
        var aggregated = updates.ToChatResponse();
        var response = await client.GetResponseAsync(Conversation, options);
        Assert.Equal(response.Text, aggregated.Text);
        Assert.Equal(response.FinishReason, aggregated.FinishReason);
        Assert.Equal(response.Usage!.TotalTokenCount, aggregated.Usage!.TotalTokenCount);
    }

    [Fact]
    public async Task Instructions_are_a_first_system_turn()
    {
        Assert.Equal(Transcript, MemoryFormerChatTemplate.Transcript.Render([new(ChatRole.User, "Hi")], "Be brief."));
        using IChatClient client = new MemoryFormerChatClient(generator);
        var withInstructions = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Hi")],
            new ChatOptions { Instructions = "Be brief.", MaxOutputTokens = 10, Seed = 9 });
        var withSystemMessage = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 10, Seed = 9 });
        Assert.Equal(withSystemMessage.Text, withInstructions.Text);
        Assert.Equal(withSystemMessage.Usage!.InputTokenCount, withInstructions.Usage!.InputTokenCount);
    }

    [Fact]
    public void Tool_calls_and_results_are_rendered_in_their_own_roles()
    {
        ChatMessage[] messages =
        [
            new(ChatRole.User, "Weather in Oslo?"),
            new(ChatRole.Assistant, [new FunctionCallContent("c1", "weather", new Dictionary<string, object?> { ["city"] = "Oslo" })]),
            new(ChatRole.Tool, [new FunctionResultContent("c1", "sunny")]),
        ];
        Assert.Equal("User: Weather in Oslo?\nAssistant: call weather({\"city\":\"Oslo\"})\nTool: sunny\nAssistant:",
            MemoryFormerChatTemplate.Transcript.Render(messages));
    }

    [Fact]
    public async Task A_custom_template_sets_the_prompt_and_where_the_reply_stops()
    {
        var chatMl = new MemoryFormerChatTemplate
        {
            SystemPrefix = "<|system|>", UserPrefix = "<|user|>", AssistantPrefix = "<|assistant|>", ToolPrefix = "<|tool|>",
            MessageSeparator = "<|end|>", GenerationPrompt = "<|assistant|>", StopSequences = ["<|end|>"],
        };
        Assert.Equal("<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>", chatMl.Render(Conversation));
        using IChatClient client = new MemoryFormerChatClient(generator, template: chatMl);
        Assert.Same(chatMl, client.GetService<MemoryFormerChatTemplate>());
        var response = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 10, Seed = 4 });
        var expected = generator.Generate(chatMl.Render(Conversation),
            new GenerationOptions { MaxNewTokens = 10, Seed = 4, StopSequences = ["<|end|>"] });
        Assert.Equal(expected.Trim(), response.Text);
    }

    [Fact]
    public async Task Generation_runs_off_the_callers_thread()
    {
        var tokenizer = new RecordingTokenizer(new ByteLevelTokenizer());
        using IChatClient client = new MemoryFormerChatClient(new TextGenerator(model, tokenizer, CPU, defaultSeed: 1));
        var options = new ChatOptions { MaxOutputTokens = 4, Seed = 1 };
        var previous = SynchronizationContext.Current;
        Task<ChatResponse> reply;
        Task<List<ChatResponseUpdate>> stream;
        SynchronizationContext.SetSynchronizationContext(new CallerContext());
        try
        {
            reply = client.GetResponseAsync(Conversation, options);
            stream = client.GetStreamingResponseAsync(Conversation, options).ToListAsync().AsTask();
        }
        finally { SynchronizationContext.SetSynchronizationContext(previous); }
        await reply;
        await stream;
        Assert.True(tokenizer.Calls > 0);
        Assert.Equal(0, tokenizer.CallsOnCallersThread);
    }

    [Fact]
    public void Metadata_the_generator_and_the_template_are_available_as_services()
    {
        using IChatClient client = new MemoryFormerChatClient(generator, modelId: "mf-nano");
        Assert.Equal("mf-nano", client.GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.Same(generator, client.GetService<TextGenerator>());
        Assert.Same(MemoryFormerChatTemplate.Transcript, client.GetService<MemoryFormerChatTemplate>());
    }

    /// <summary>Marks the thread that called the client.</summary>
    private sealed class CallerContext : SynchronizationContext;

    /// <summary>A tokenizer that counts its calls, and those made under <see cref="CallerContext"/>.</summary>
    private sealed class RecordingTokenizer(ITextTokenizer inner) : ITextTokenizer
    {
        private int calls, onCaller;

        public int Calls => Volatile.Read(ref calls);
        public int CallsOnCallersThread => Volatile.Read(ref onCaller);
        public int VocabularySize => inner.VocabularySize;
        public int ModelVocabularySize => inner.ModelVocabularySize;
        public int EndOfTextId => inner.EndOfTextId;
        public int? PadId => inner.PadId;
        public IReadOnlyList<int> Encode(string text) { Record(); return inner.Encode(text); }
        public string Decode(IEnumerable<int> ids) { Record(); return inner.Decode(ids); }
        public int CountBytes(string text) => inner.CountBytes(text);
        public TokenizerDescription Describe() => inner.Describe();

        private void Record()
        {
            Interlocked.Increment(ref calls);
            if (SynchronizationContext.Current is CallerContext) Interlocked.Increment(ref onCaller);
        }
    }
}
