using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

using Microsoft.ML.MemoryFormer.Tests.Training;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerLanguageModelTransformerTests
{
    private static (MLContext Ml, MemoryFormerLanguageModelTransformer Model) Fit(MemoryFormerLanguageModelEstimator.Options? options = null)
    {
        var ml = new MLContext(seed: 7);
        var data = ml.Data.LoadFromEnumerable(Corpus);
        return (ml, ml.Text.MemoryFormer(options ?? NanoOptions()).Fit(data));
    }

    private static string[] GenerateColumn(MLContext ml, ITransformer model, params string[] prompts)
    {
        var data = ml.Data.LoadFromEnumerable(prompts.Select(p => new PromptRow { Prompt = p }));
        return model.Transform(data).GetColumn<string>("GeneratedText").ToArray();
    }

    [Fact]
    public void ScoreTokens_gives_each_tokens_log_probability_consistent_with_minimal_pairs()
    {
        var (_, model) = Fit();
        using var _ = model;
        const string good = "the cat sat", bad = "cat the sat";

        var scores = model.ScoreTokens(good);

        Assert.Equal(good, string.Concat(scores.Tokens.Select(t => t.Text)));
        Assert.All(scores.Tokens, t => Assert.True(t.LogProbability < 0));
        double margin = model.EvaluateMinimalPairs([(good, bad)]).MeanMarginNats;
        Assert.Equal(margin, scores.LogProbability - model.ScoreTokens(bad).LogProbability, 6);
    }

    [Fact]
    public void A_pipeline_fits_and_generates_text_for_every_prompt_row()
    {
        var ml = new MLContext(seed: 1);
        var pipeline = ml.Text.MemoryFormer(NanoOptions());
        using var model = pipeline.Fit(ml.Data.LoadFromEnumerable(Corpus));
        string[] prompts = ["the cat", "the dog", "", "a", "the", "x"];
        var generated = GenerateColumn(ml, model, prompts);
        Assert.Equal(prompts.Select(p => model.Generate(p)), generated);   // greedy: the batch equals one prompt at a time
        Assert.Contains(generated, g => g.Length > 0);
        Assert.Equal(20, model.TrainingResult!.Steps);
        Assert.True(model.TrainingResult.LossHistory[^1] < model.TrainingResult.LossHistory[0]);
        var engine = ml.Model.CreatePredictionEngine<PromptRow, Generated>(model);
        Assert.Equal(generated[0], engine.Predict(new PromptRow { Prompt = "the cat" }).GeneratedText);
    }

    [Fact]
    public void Sampled_text_of_a_prompt_row_does_not_depend_on_its_neighbours_or_its_place()
    {
        var options = NanoOptions(steps: 5);
        options.Generation = new GenerationOptions { Temperature = 1.0, TopK = 40, MaxNewTokens = 12, Seed = 3 };
        var (ml, model) = Fit(options);
        using var _ = model;
        string[] prompts = ["the cat", "the dog", "a"];
        var alone = prompts.Select(p => model.Generate(p)).ToArray();
        Assert.Equal(alone, GenerateColumn(ml, model, prompts));
        Assert.Equal(alone.Reverse(), GenerateColumn(ml, model, [.. prompts.Reverse()]));
    }

    [Fact]
    public void Save_then_load_in_a_new_MLContext_gives_identical_greedy_output()
    {
        var (ml, model) = Fit();
        using var owned = model;
        var data = ml.Data.LoadFromEnumerable(Corpus);
        string path = Path.Combine(Path.GetTempPath(), $"mf-lm-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var fresh = new MLContext();
            fresh.ComponentCatalog.RegisterMemoryFormer();
            var loaded = fresh.Model.Load(path, out _);
            string[] prompts = ["the cat", "the dog ran", "mat"];
            Assert.Equal(GenerateColumn(ml, model, prompts), GenerateColumn(fresh, loaded, prompts));
            (loaded as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_standalone_checkpoint_round_trips_weights_settings_and_greedy_output()
    {
        var (ml, model) = Fit();
        using var owned = model;
        string path = Path.Combine(Path.GetTempPath(), $"mf-lm-{Guid.NewGuid():N}.mfm");
        try
        {
            model.Save(path);
            using var loaded = ml.Text.LoadLanguageModel(path);
            Assert.Equal(model.Config, loaded.Config);
            Assert.Equal(model.DefaultGenerationOptions.Seed, loaded.DefaultGenerationOptions.Seed);
            Assert.Equal(model.Tokenizer.Describe().Kind, loaded.Tokenizer.Describe().Kind);
            Assert.Equal(model.Generate("the cat"), loaded.Generate("the cat"));
            Assert.NotNull(loaded.Model.Backbone);   // the backbone that classification/tabular trainers start from
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Streaming_pieces_concatenate_to_the_generated_text_and_long_prompts_are_cropped()
    {
        var (_, model) = Fit();
        using var owned = model;
        string longPrompt = string.Concat(Enumerable.Repeat("the cat sat on the mat. ", 10));   // 240 bytes ≫ T = 16
        var pieces = new List<string>();
        await foreach (var piece in model.GenerateStreaming(longPrompt)) pieces.Add(piece);
        Assert.Equal(model.Generate(longPrompt), string.Concat(pieces));
    }

    [Fact]
    public async Task The_chat_client_answers_with_the_models_continuation_of_the_transcript()
    {
        var (_, model) = Fit();
        using var _ = model;
        using var chat = model.AsChatClient("tiny");
        var options = new Microsoft.Extensions.AI.ChatOptions { MaxOutputTokens = 8, Temperature = 0 };
        var response = await chat.GetResponseAsync([new(Microsoft.Extensions.AI.ChatRole.User, "hi")], options);
        var expected = model.Generate("User: hi\nAssistant:", model.DefaultGenerationOptions with
        {
            MaxNewTokens = 8, Temperature = 0, StopSequences = [.. model.DefaultGenerationOptions.StopSequences, "\nUser:"],
        });
        Assert.Equal(expected.Trim(), response.Text);
        Assert.Equal("tiny", response.ModelId);
    }

    [Fact]
    public void The_seed_comes_from_the_MLContext_so_two_fits_are_identical()
    {
        var (_, a) = Fit();
        var (_, b) = Fit();
        using (a)
        using (b)
        {
            Assert.Equal(a.TrainingResult!.LossHistory, b.TrainingResult!.LossHistory);
            Assert.Equal(7, a.DefaultGenerationOptions.Seed);
        }
    }

    [Fact]
    public void Fit_reports_progress_through_the_MLContext_log_and_the_callback()
    {
        var ml = new MLContext(seed: 1);
        var lines = new List<string>();
        ml.Log += (_, e) => { if (e.Source.Contains(nameof(MemoryFormerLanguageModelEstimator))) lines.Add(e.Message); };
        var reports = new List<TrainingProgress>();
        var options = NanoOptions();
        options.Progress = new SynchronousProgress(reports.Add);
        using var model = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus));
        Assert.Equal([5, 10, 15, 20], reports.Select(r => r.Step));
        Assert.Contains(reports, r => r.ValidationLoss is not null);
        Assert.Contains(lines, l => l.Contains("step 20/20"));
    }

    [Fact]
    public void Cancellation_stops_fit_between_steps()
    {
        using var cancel = new CancellationTokenSource();
        var options = NanoOptions(steps: 1000);
        options.CancellationToken = cancel.Token;
        options.Progress = new SynchronousProgress(p => { if (p.Step >= 5) cancel.Cancel(); });
        var ml = new MLContext(seed: 1);
        Assert.ThrowsAny<OperationCanceledException>(() => ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus)));
    }

    [Fact]
    public void A_gpt2_tokenized_model_trains_generates_and_reloads_with_its_tokenizer()
    {
        var options = NanoOptions(steps: 3);
        options.Tokenizer = Microsoft.ML.MemoryFormer.Text.TextTokenizerKind.Gpt2;
        options.ContextLength = 8;
        options.ValidationFraction = 0;
        var (_, model) = Fit(options);
        using var owned = model;
        Assert.Equal(50304, model.Config.VocabularySize);
        string path = Path.Combine(Path.GetTempPath(), $"mf-lm-{Guid.NewGuid():N}.mfm");
        try
        {
            model.Save(path);
            using var loaded = MemoryFormerLanguageModelTransformer.Load(path);
            Assert.Equal("gpt2", loaded.Tokenizer.Describe().Kind);
            Assert.Equal(model.Generate("the cat"), loaded.Generate("the cat"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
