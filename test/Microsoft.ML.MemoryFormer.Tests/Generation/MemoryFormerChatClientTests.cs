using Microsoft.Extensions.AI;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Generation;

public sealed class MemoryFormerChatClientTests : IDisposable
{
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
    public async Task Response_and_stream_are_the_generators_continuation_of_the_transcript()
    {
        using IChatClient client = new MemoryFormerChatClient(generator);
        ChatMessage[] messages = [new(ChatRole.System, "Be brief."), new(ChatRole.User, "Hi")];
        var options = new ChatOptions { MaxOutputTokens = 12, Temperature = 0.7f, Seed = 11 };
        var response = await client.GetResponseAsync(messages, options);
        var expected = generator.Generate("System: Be brief.\nUser: Hi\nAssistant:",
            new GenerationOptions { MaxNewTokens = 12, Temperature = 0.7f, Seed = 11, StopSequences = ["\nUser:"] });
        Assert.Equal(expected.Trim(), response.Text);
        Assert.Equal(ChatRole.Assistant, response.Messages[0].Role);

        var streamed = new List<string>();
        await foreach (var update in client.GetStreamingResponseAsync(messages, options)) streamed.Add(update.Text);
        Assert.Equal(expected, string.Concat(streamed));
    }

    [Fact]
    public void Metadata_and_the_generator_are_available_as_services()
    {
        using IChatClient client = new MemoryFormerChatClient(generator, modelId: "mf-nano");
        Assert.Equal("mf-nano", client.GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.Same(generator, client.GetService<TextGenerator>());
    }
}
