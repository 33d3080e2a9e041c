using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;

namespace Microsoft.ML.MemoryFormer.Generation;

/// <summary>
/// An <see cref="IChatClient"/> over a <see cref="TextGenerator"/>, so a MemoryFormer language model plugs into .NET AI
/// apps (Microsoft.Extensions.AI). Messages are rendered as a plain transcript ("System: …", "User: …",
/// "Assistant:") and generation stops before the next "User:" turn. Small models trained on raw text have no chat
/// tuning: expect continuations, not instructions followed.
/// </summary>
public sealed class MemoryFormerChatClient : IChatClient
{
    private readonly TextGenerator generator;
    private readonly GenerationOptions defaults;
    private readonly ChatClientMetadata metadata;

    /// <summary>Wraps <paramref name="generator"/>; <paramref name="defaults"/> apply where <see cref="ChatOptions"/> are silent.</summary>
    public MemoryFormerChatClient(TextGenerator generator, GenerationOptions? defaults = null, string modelId = "memoryformer")
    {
        this.generator = generator ?? throw new ArgumentNullException(nameof(generator));
        this.defaults = defaults ?? new GenerationOptions();
        this.defaults.Validate();
        metadata = new ChatClientMetadata("Microsoft.ML.MemoryFormer", defaultModelId: modelId);
    }

    /// <inheritdoc/>
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var text = generator.Generate(Render(messages), Merge(options), cancellationToken).Trim();
        return Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, text)) { ModelId = metadata.DefaultModelId });
    }

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var piece in generator.GenerateStreaming(Render(messages), Merge(options), cancellationToken))
            yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ModelId = metadata.DefaultModelId };
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? metadata
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType.IsInstanceOfType(generator) ? generator
        : null;

    /// <summary>Does nothing: the generator and its model belong to the caller.</summary>
    public void Dispose() { }

    /// <summary>The transcript the model continues.</summary>
    internal static string Render(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = new StringBuilder();
        foreach (var m in messages)
            prompt.Append(m.Role == ChatRole.System ? "System" : m.Role == ChatRole.Assistant ? "Assistant" : "User")
                .Append(": ").Append(m.Text).Append('\n');
        return prompt.Append("Assistant:").ToString();
    }

    private GenerationOptions Merge(ChatOptions? o)
    {
        var merged = defaults with
        {
            MaxNewTokens = o?.MaxOutputTokens ?? defaults.MaxNewTokens,
            Temperature = o?.Temperature ?? defaults.Temperature,
            TopP = o?.TopP ?? defaults.TopP,
            TopK = o?.TopK ?? defaults.TopK,
            Seed = o?.Seed is long seed ? unchecked((int)seed) : defaults.Seed,
            StopSequences = [.. defaults.StopSequences, .. o?.StopSequences ?? [], "\nUser:"],
        };
        merged.Validate();
        return merged;
    }
}
