using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Generation;

public sealed class TextGeneratorTests : IDisposable
{
    private readonly LanguageModel model;
    private readonly TextGenerator generator;
    private static readonly GenerationOptions Greedy = new() { Temperature = 0, MaxNewTokens = 40 };

    public TextGeneratorTests()
    {
        var tokenizer = new ByteLevelTokenizer();
        random.manual_seed(21);
        // context 16: 40 new tokens slide the window twice
        model = new LanguageModel(MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize, Kind = TransformerKind.MemoryFormer });
        generator = new TextGenerator(model, tokenizer, CPU, defaultSeed: 5);
    }

    public void Dispose() => model.Dispose();

    [Theory]
    [InlineData("Hello")]
    [InlineData("a prompt longer than the sixteen-token context")]
    [InlineData("")]
    public void Greedy_tokens_with_and_without_the_kv_cache_are_identical(string prompt)
    {
        var ids = generator.Tokenizer.Encode(prompt);
        var cached = generator.GenerateIds(ids, Greedy, useCache: true);
        var recomputed = generator.GenerateIds(ids, Greedy, useCache: false);
        Assert.Equal(40, cached.Length);
        Assert.Equal(recomputed, cached);
    }

    [Fact]
    public void Sampled_tokens_with_and_without_the_cache_are_identical_for_the_same_seed()
    {
        var options = new GenerationOptions { Temperature = 1.0, TopK = 20, MaxNewTokens = 30, Seed = 9 };
        var ids = generator.Tokenizer.Encode("Seeded");
        Assert.Equal(generator.GenerateIds(ids, options, false), generator.GenerateIds(ids, options, true));
    }

    [Fact]
    public void Output_penalties_count_each_rows_own_output_with_and_without_the_cache_and_in_a_batch()
    {
        var penalized = Greedy with { MaxNewTokens = 10, FrequencyPenalty = 3, PresencePenalty = 1 };
        var ids = generator.Tokenizer.Encode("To be");
        var cached = generator.GenerateIds(ids, penalized, useCache: true);
        Assert.Equal(generator.GenerateIds(ids, penalized, useCache: false), cached);
        Assert.NotEqual(generator.GenerateIds(ids, Greedy with { MaxNewTokens = 10 }, useCache: true), cached);

        string[] prompts = ["To be", "or not", "x"];
        Assert.Equal(prompts.Select(p => generator.Generate(p, penalized)), generator.GenerateBatch(prompts, penalized));

        // The prompt does not count: on a prompt of one token repeated, which is also the greedy next token, the first
        // token is the same with and without the penalties.
        int NextOf(int[] prompt, GenerationOptions o) => generator.GenerateIds(prompt, o with { MaxNewTokens = 1 }, useCache: true)[0];
        var repeated = Enumerable.Range(0, 256).Select(c => Enumerable.Repeat(c, 6).ToArray()).FirstOrDefault(p => NextOf(p, Greedy) == p[0]);
        Assert.NotNull(repeated);
        Assert.Equal(repeated[0], NextOf(repeated, penalized));
    }

    [Fact]
    public void A_batch_of_prompts_of_different_lengths_gives_the_same_greedy_text_as_one_at_a_time()
    {
        // within the 16-token context (the window slides per batch, by its longest row, once it is full)
        string[] prompts = ["To be", "or not", "x"];
        var options = Greedy with { MaxNewTokens = 10 };
        var batch = generator.GenerateBatch(prompts, options);
        Assert.Equal(prompts.Select(p => generator.Generate(p, options)), batch);
    }

    [Fact]
    public void A_sampled_prompt_gets_the_same_text_in_a_batch_as_alone_whatever_its_place()
    {
        // Each row draws from its own generator seeded alike: neither its neighbours nor its position change its text.
        string[] prompts = ["To be", "or not", "x"];
        var options = new GenerationOptions { Temperature = 1.0, MaxNewTokens = 12, Seed = 4 };
        var alone = prompts.Select(p => generator.Generate(p, options)).ToArray();
        Assert.Equal(alone, generator.GenerateBatch(prompts, options));
        Assert.Equal(alone.Reverse(), generator.GenerateBatch([.. prompts.Reverse()], options));
        Assert.Equal([alone[1], alone[1]], generator.GenerateBatch(["or not", "or not"], options));
    }

    [Fact]
    public async Task Usage_counts_the_models_own_tokens_and_says_why_generation_stopped()
    {
        var options = new GenerationOptions { Temperature = 1.0, MaxNewTokens = 12, Seed = 2 };
        var promptIds = generator.Tokenizer.Encode("Usage");
        var ids = generator.GenerateIds(promptIds, options, useCache: true);
        int end = Array.IndexOf(ids, generator.Tokenizer.EndOfTextId);
        var usage = new GenerationUsage();
        Assert.Equal(generator.Generate("Usage", options), generator.Generate("Usage", options, usage));
        Assert.Equal(end < 0 ? 12 : end + 1, usage.GeneratedTokens);
        Assert.Equal(end < 0, usage.StoppedAtMaxNewTokens);
        Assert.Equal(promptIds.Count, usage.PromptTokens);
        var streamed = new GenerationUsage();
        await foreach (var _ in generator.GenerateStreaming("Usage", options, streamed)) { }
        Assert.Equal((usage.PromptTokens, usage.GeneratedTokens, usage.StoppedAtMaxNewTokens),
            (streamed.PromptTokens, streamed.GeneratedTokens, streamed.StoppedAtMaxNewTokens));

        // Stopped by a stop sequence: not at the limit, and the tokens up to the one completing it counted.
        var free = generator.Generate("Stop", Greedy with { MaxNewTokens = 30 });
        var stopped = new GenerationUsage();
        generator.Generate("Stop", Greedy with { MaxNewTokens = 30, StopSequences = [free.Substring(2, 2)] }, stopped);
        Assert.False(stopped.StoppedAtMaxNewTokens);
        Assert.InRange(stopped.GeneratedTokens, 1, 29);
    }

    [Fact]
    public async Task Streamed_pieces_concatenate_to_the_generated_text()
    {
        var options = new GenerationOptions { Temperature = 0.9, MaxNewTokens = 30, Seed = 3 };
        var pieces = new List<string>();
        await foreach (var piece in generator.GenerateStreaming("Once", options)) pieces.Add(piece);
        Assert.NotEmpty(pieces);
        Assert.Equal(generator.Generate("Once", options), string.Concat(pieces));
    }

    [Fact]
    public void The_same_seed_gives_the_same_text_and_another_seed_does_not()
    {
        var a = generator.Generate("Seed", new GenerationOptions { Temperature = 1.2, MaxNewTokens = 30, Seed = 1 });
        var b = generator.Generate("Seed", new GenerationOptions { Temperature = 1.2, MaxNewTokens = 30, Seed = 1 });
        var c = generator.Generate("Seed", new GenerationOptions { Temperature = 1.2, MaxNewTokens = 30, Seed = 2 });
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Text_stops_before_a_stop_sequence()
    {
        var free = generator.Generate("Stop", Greedy with { MaxNewTokens = 30 });
        Assert.True(free.Length >= 4, $"expected some text, got '{free}'");
        var stop = free.Substring(2, 2);
        var cut = generator.Generate("Stop", Greedy with { MaxNewTokens = 30, StopSequences = [stop] });
        Assert.Equal(free[..free.IndexOf(stop, StringComparison.Ordinal)], cut);
    }

    [Fact]
    public void Cancellation_stops_generation()
    {
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        Assert.Throws<OperationCanceledException>(() => generator.Generate("x", Greedy, cancel.Token));
    }
}
