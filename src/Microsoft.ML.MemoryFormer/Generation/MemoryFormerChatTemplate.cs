using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace Microsoft.ML.MemoryFormer.Generation;

/// <summary>
/// How <see cref="MemoryFormerChatClient"/> turns a conversation into the text the model continues, and where a reply
/// ends. The default is the plain transcript a model trained on raw text continues best:
/// <c>System: …\nUser: …\nAssistant: …\nTool: …\nAssistant:</c>. A model fine-tuned on another format (ChatML-style
/// markers, for example) gets a template with its own prefixes, separators and stop sequences.
/// </summary>
/// <remarks>
/// Each message is rendered as its role's prefix, its text and <see cref="MessageSeparator"/>. A tool result
/// (<see cref="FunctionResultContent"/>) is rendered as its result under <see cref="ToolPrefix"/>; a function call an
/// assistant made (<see cref="FunctionCallContent"/>) as <c>call name({"arg":…})</c> in the assistant's turn. Roles the
/// template does not know are rendered under their own name (<c>Critic: …</c>).
/// </remarks>
public sealed record MemoryFormerChatTemplate
{
    /// <summary>The default plain-transcript template.</summary>
    public static MemoryFormerChatTemplate Transcript { get; } = new();

    /// <summary>Put before a system message (and before <see cref="ChatOptions.Instructions"/>).</summary>
    public string SystemPrefix { get; init; } = "System: ";

    /// <summary>Put before a user message.</summary>
    public string UserPrefix { get; init; } = "User: ";

    /// <summary>Put before an earlier assistant message.</summary>
    public string AssistantPrefix { get; init; } = "Assistant: ";

    /// <summary>Put before a tool message (a function's result).</summary>
    public string ToolPrefix { get; init; } = "Tool: ";

    /// <summary>Put after every message.</summary>
    public string MessageSeparator { get; init; } = "\n";

    /// <summary>Ends the rendered conversation: the start of the assistant turn the model writes.</summary>
    public string GenerationPrompt { get; init; } = "Assistant:";

    /// <summary>Where a reply ends (not included in it): the start of the next turn the model might invent.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = ["\nUser:", "\nSystem:", "\nTool:"];

    /// <summary>Renders <paramref name="messages"/>, after <paramref name="instructions"/> as a first system message when given.</summary>
    /// <param name="messages">The conversation so far.</param>
    /// <param name="instructions">Instructions for this request (<see cref="ChatOptions.Instructions"/>), or null.</param>
    /// <returns>The prompt text, ending with <see cref="GenerationPrompt"/>.</returns>
    /// <exception cref="ArgumentException">A message is null.</exception>
    public string Render(IEnumerable<ChatMessage> messages, string? instructions = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = new StringBuilder();
        if (!string.IsNullOrWhiteSpace(instructions))
            prompt.Append(SystemPrefix).Append(instructions).Append(MessageSeparator);
        int index = 0;
        foreach (var message in messages)
        {
            if (message is null)
                throw new ArgumentException($"Message {index} is null; pass only ChatMessage instances.", nameof(messages));
            prompt.Append(PrefixOf(message.Role)).Append(TextOf(message)).Append(MessageSeparator);
            index++;
        }
        return prompt.Append(GenerationPrompt).ToString();
    }

    private string PrefixOf(ChatRole role) =>
        role == ChatRole.System ? SystemPrefix
        : role == ChatRole.User ? UserPrefix
        : role == ChatRole.Assistant ? AssistantPrefix
        : role == ChatRole.Tool ? ToolPrefix
        : char.ToUpperInvariant(role.Value[0]) + role.Value[1..] + ": ";

    private static string TextOf(ChatMessage message)
    {
        var parts = new List<string>();
        foreach (var content in message.Contents)
        {
            switch (content)
            {
                case TextContent text when !string.IsNullOrEmpty(text.Text):
                    parts.Add(text.Text);
                    break;
                case FunctionResultContent result:
                    parts.Add(result.Result switch
                    {
                        null => "",
                        string s => s,
                        JsonElement json => json.ToString(),
                        var other => JsonSerializer.Serialize(other),
                    });
                    break;
                case FunctionCallContent call:
                    parts.Add($"call {call.Name}({JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>())})");
                    break;
            }
        }
        return string.Join(" ", parts);
    }
}
