using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.AI;

namespace Microsoft.ML.MemoryFormer.Generation;

/// <summary>
/// An <see cref="IChatClient"/> over a <see cref="TextGenerator"/>, so a MemoryFormer language model plugs into .NET AI
/// apps (Microsoft.Extensions.AI). Messages are rendered through a <see cref="MemoryFormerChatTemplate"/> (by default
/// a plain "System: … / User: … / Assistant:" transcript) and the reply ends at the template's stop sequences. Small
/// models trained on raw text have no chat tuning: expect continuations, not instructions followed.
/// </summary>
/// <remarks>
/// Like Microsoft.Extensions.AI's own clients, a response carries <see cref="ChatResponse.ResponseId"/>, the message's
/// <see cref="ChatMessage.MessageId"/>, <see cref="ChatResponse.CreatedAt"/>, <see cref="ChatResponse.ModelId"/>,
/// <see cref="ChatResponse.FinishReason"/> (<see cref="ChatFinishReason.Stop"/> at end-of-text or a stop sequence,
/// <see cref="ChatFinishReason.Length"/> at <see cref="ChatOptions.MaxOutputTokens"/>) and token
/// <see cref="ChatResponse.Usage"/>; a stream carries the same ids on every update and the finish reason and a
/// <see cref="UsageContent"/> on its last one. <see cref="ChatOptions.Instructions"/> become a first system turn.
/// <see cref="ChatOptions.MaxOutputTokens"/>, <see cref="ChatOptions.Temperature"/>, <see cref="ChatOptions.TopP"/>,
/// <see cref="ChatOptions.TopK"/>, <see cref="ChatOptions.FrequencyPenalty"/>, <see cref="ChatOptions.PresencePenalty"/>,
/// <see cref="ChatOptions.Seed"/> and <see cref="ChatOptions.StopSequences"/> set the matching <see cref="GenerationOptions"/>;
/// the model calls no tools (a request that requires one is refused with <see cref="NotSupportedException"/>; offered
/// tools are otherwise left unused) and a <see cref="ChatOptions.ResponseFormat"/> is not enforced.
/// The reply is trimmed of surrounding white space, and so is the stream (its pieces concatenate to the reply's text).
/// Generation runs on the thread pool, never on the caller's thread.
/// </remarks>
public sealed class MemoryFormerChatClient : IChatClient
{
    private readonly TextGenerator generator;
    private readonly GenerationOptions defaults;
    private readonly ChatClientMetadata metadata;

    /// <summary>Wraps <paramref name="generator"/>; <paramref name="defaults"/> apply where <see cref="ChatOptions"/> are silent.</summary>
    /// <param name="generator">The generator of the model that answers.</param>
    /// <param name="defaults">Generation settings used where a request's <see cref="ChatOptions"/> set nothing.</param>
    /// <param name="modelId">The id reported as <see cref="ChatResponse.ModelId"/> and in <see cref="ChatClientMetadata"/>.</param>
    /// <param name="template">How conversations are rendered; <see cref="MemoryFormerChatTemplate.Transcript"/> when null.</param>
    public MemoryFormerChatClient(TextGenerator generator, GenerationOptions? defaults = null, string modelId = "memoryformer",
        MemoryFormerChatTemplate? template = null)
    {
        this.generator = generator ?? throw new ArgumentNullException(nameof(generator));
        this.defaults = defaults ?? new GenerationOptions();
        this.defaults.Validate();
        ArgumentException.ThrowIfNullOrWhiteSpace(modelId);
        Template = template ?? MemoryFormerChatTemplate.Transcript;
        metadata = new ChatClientMetadata("Microsoft.ML.MemoryFormer", defaultModelId: modelId);
    }

    /// <summary>How conversations are rendered into the prompt and where replies stop.</summary>
    public MemoryFormerChatTemplate Template { get; }

    /// <inheritdoc/>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
            updates.Add(update);
        var text = string.Concat(updates.Select(u => u.Text));
        var last = updates[^1];
        var message = new ChatMessage(ChatRole.Assistant, text) { MessageId = last.MessageId, CreatedAt = last.CreatedAt };
        return new ChatResponse(message)
        {
            ResponseId = last.ResponseId,
            CreatedAt = last.CreatedAt,
            ModelId = last.ModelId,
            FinishReason = last.FinishReason,
            Usage = updates.SelectMany(u => u.Contents).OfType<UsageContent>().Select(u => u.Details).LastOrDefault(),
        };
    }

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var prompt = Template.Render(messages, options?.Instructions);
        var settings = Merge(options);
        var id = "mf-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow;
        var report = new GenerationUsage();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pieces = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        ExceptionDispatchInfo? failure = null;
        // The generator computes synchronously between its pieces; run it on the pool so the caller's thread (a UI or
        // request thread) only ever waits.
        var producer = Task.Run(async () =>
        {
            try
            {
                await foreach (var piece in generator.GenerateStreaming(prompt, settings, report, stop.Token).ConfigureAwait(false))
                    await pieces.Writer.WriteAsync(piece, stop.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
            finally
            {
                pieces.Writer.Complete();
            }
        }, CancellationToken.None);
        try
        {
            var trim = new WhiteSpaceTrimmer();
            await foreach (var piece in pieces.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                var text = trim.Push(piece);
                if (text.Length > 0)
                    yield return Update(id, created, [new TextContent(text)]);
            }
            await producer.ConfigureAwait(false);
            failure?.Throw();
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await producer.ConfigureAwait(false);
        }
        cancellationToken.ThrowIfCancellationRequested();
        var usage = new UsageDetails
        {
            InputTokenCount = report.PromptTokens,
            OutputTokenCount = report.GeneratedTokens,
            TotalTokenCount = report.PromptTokens + report.GeneratedTokens,
        };
        var final = Update(id, created, [new UsageContent(usage)]);
        final.FinishReason = report.StoppedAtMaxNewTokens ? ChatFinishReason.Length : ChatFinishReason.Stop;
        yield return final;
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(ChatClientMetadata) ? metadata
            : serviceType.IsInstanceOfType(this) ? this
            : serviceType.IsInstanceOfType(generator) ? generator
            : serviceType.IsInstanceOfType(Template) ? Template
            : null;
    }

    /// <summary>Does nothing: the generator and its model belong to the caller.</summary>
    public void Dispose() { }

    /// <summary>The transcript the model continues, with the default template.</summary>
    internal static string Render(IEnumerable<ChatMessage> messages) => MemoryFormerChatTemplate.Transcript.Render(messages);

    private ChatResponseUpdate Update(string id, DateTimeOffset created, IList<AIContent> contents) =>
        new(ChatRole.Assistant, contents)
        {
            ResponseId = id,
            MessageId = id,
            CreatedAt = created,
            ModelId = metadata.DefaultModelId,
        };

    private GenerationOptions Merge(ChatOptions? o)
    {
        if (o?.ToolMode is RequiredChatToolMode && o.Tools is { Count: > 0 })
            throw new NotSupportedException("This chat client cannot call tools (a MemoryFormer language model only continues " +
                "text), but ChatOptions.ToolMode requires a tool call. Leave ToolMode at Auto or None, or remove the tools.");
        var merged = defaults with
        {
            MaxNewTokens = o?.MaxOutputTokens ?? defaults.MaxNewTokens,
            Temperature = o?.Temperature ?? defaults.Temperature,
            TopP = o?.TopP ?? defaults.TopP,
            TopK = o?.TopK ?? defaults.TopK,
            FrequencyPenalty = o?.FrequencyPenalty ?? defaults.FrequencyPenalty,
            PresencePenalty = o?.PresencePenalty ?? defaults.PresencePenalty,
            Seed = o?.Seed is long seed ? unchecked((int)seed) : defaults.Seed,
            StopSequences = [.. defaults.StopSequences, .. o?.StopSequences ?? [], .. Template.StopSequences],
        };
        merged.Validate();
        return merged;
    }

    /// <summary>
    /// Trims a stream of pieces as <see cref="string.Trim()"/> trims their concatenation: leading white space is
    /// dropped, trailing white space is held back until more text follows it and dropped at the end.
    /// </summary>
    private sealed class WhiteSpaceTrimmer
    {
        private readonly StringBuilder held = new();
        private bool started;

        public string Push(string piece)
        {
            if (!started)
            {
                piece = piece.TrimStart();
                if (piece.Length == 0) return "";
                started = true;
            }
            int end = piece.Length;
            while (end > 0 && char.IsWhiteSpace(piece[end - 1])) end--;
            if (end == 0)
            {
                held.Append(piece);
                return "";
            }
            var text = held.Append(piece, 0, end).ToString();
            held.Clear().Append(piece, end, piece.Length - end);
            return text;
        }
    }
}
