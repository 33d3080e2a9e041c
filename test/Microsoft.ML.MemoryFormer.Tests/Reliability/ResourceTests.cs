using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Generation.Sampling;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Tests.MLNet;
using Xunit.Abstractions;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// Long runs keep native tensors and process memory flat after warm-up, and disposing a transformer releases its
/// tensors (docs/reliability.md "Resources and cancellation").
/// </summary>
public class ResourceTests(ITestOutputHelper output)
{
    private const int Runs = 10_000;

    private sealed class FeaturesOnly
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
    }

    private sealed class Scored
    {
        public float Score { get; set; }
    }

    [Fact]
    public void Generating_10000_tokens_keeps_tensors_and_memory_flat()
    {
        var ml = new MLContext(seed: 1);
        var training = NanoOptions(steps: 2);
        training.Architecture = training.Architecture with { Layers = 1 };     // 10,000 tokens in a few seconds
        using var model = ml.Text.MemoryFormer(training).Fit(ml.Data.LoadFromEnumerable(Corpus));
        var options = new GenerationOptions { Temperature = 0.9, TopK = 20, TopP = 0.95, RepetitionPenalty = 1.1, Seed = 1 };
        var decoder = new TokenDecoder(model.Model, ByteLevelTokenizer.Padding, ByteLevelTokenizer.EndOfText, model.Device);
        IReadOnlyList<int>[] prompts = [.. new[] { "the cat", "a", "", "the dog ran" }.Select(p => model.Tokenizer.Encode(p))];
        // Four sequences at once, every step through the KV cache, all sampling stages and, every ContextLength / 2
        // tokens, a window slide that refills the cache; the decoder never stops early, so exactly `tokens` are made.
        void Generate(int tokens)
        {
            using var sampler = new TokenSampler(options with { MaxNewTokens = tokens / prompts.Length }, vocabularySize: model.Tokenizer.VocabularySize);
            Assert.Equal(tokens, decoder.Decode(prompts, sampler, useCache: true).Sum(step => step.Length));
        }

        Generate(Runs / 10);                                                    // warm-up
        var (tensors, steadyBytes, report) = MemoryProbe.Growth(() => Generate(Runs / 5), slices: 5);
        output.WriteLine(report);

        Assert.Equal(0, tensors);
        // A leak of one [1, V] logits tensor per token (or one [4, V] per step) would cost V·4 bytes of data plus ~300
        // bytes of native and managed bookkeeping per token.
        long leakOfOneTensorPerToken = Runs * ((long)model.Config.VocabularySize * sizeof(float) + 300);
        Assert.True(steadyBytes < leakOfOneTensorPerToken, $"{report}; one leaked tensor per token: {leakOfOneTensorPerToken / 1024} KiB");
    }

    [Fact]
    public void Making_10000_predictions_keeps_tensors_and_memory_flat()
    {
        var ml = new MLContext(seed: 1);
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(32, 1)));
        var engine = ml.Model.CreatePredictionEngine<FeaturesOnly, Scored>(model);
        var rows = TabularRows.Points(100, 2, missing: 0.1).Select(f => new FeaturesOnly { Features = f }).ToArray();
        var scored = new Scored();
        void Predict(int count)
        {
            for (int i = 0; i < count; i++) engine.Predict(rows[i % rows.Length], ref scored);
        }

        Predict(Runs / 10);                                                     // warm-up
        var (tensors, steadyBytes, report) = MemoryProbe.Growth(() => Predict(Runs / 5), slices: 5);
        output.WriteLine(report);

        Assert.Equal(0, tensors);
        // A leaked hidden state [1, 1 + F, d] per prediction: its data plus ~300 bytes of bookkeeping.
        long leakOfOneTensorPerPrediction = Runs * ((1 + 4L) * model.Architecture.Width * sizeof(float) + 300);
        Assert.True(steadyBytes < leakOfOneTensorPerPrediction, $"{report}; one leaked tensor per prediction: {leakOfOneTensorPerPrediction / 1024} KiB");
    }

    [Fact]
    [WithoutTorchScope]                                                          // measures when Dispose frees native memory
    public void Disposing_a_transformer_releases_its_tensors()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(32, 1));
        var tabularOptions = TabularRows.TinyOptions(1);
        tabularOptions.Architecture = tabularOptions.Architecture with { Width = 128, BitsPerChunk = 8 };   // tables of 4,096 rows and more
        var languageOptions = NanoOptions(steps: 1);
        languageOptions.Architecture = languageOptions.Architecture with { Width = 128, BitsPerChunk = 8, Layers = 1 };
        MemoryFormerTabularTransformer FitTabular() => ml.Regression.Trainers.MemoryFormerTabular(tabularOptions).Fit(data);
        MemoryFormerLanguageModelTransformer FitLanguage() => ml.Text.MemoryFormer(languageOptions).Fit(ml.Data.LoadFromEnumerable(Corpus));
        FitTabular().Dispose();                                                 // warm-up: statics, JIT, allocator
        using (var warm = FitLanguage()) warm.Generate("a");

        var baseline = MemoryProbe.Measure();
        var tabular = FitTabular();
        var language = FitLanguage();
        language.Generate("the");
        var loaded = MemoryProbe.Measure();
        tabular.Dispose();
        language.Dispose();
        var released = MemoryProbe.Measure();
        GC.KeepAlive(tabular);                                                  // still referenced: only Dispose can have freed them
        GC.KeepAlive(language);

        long modelBytes = 4L * 2 * (5 * 4096 * 128);                            // a lower bound: 5 tables of at least 4,096 × 128 per model
        string report = $"native/managed KiB: before {baseline.Native / 1024}/{baseline.Managed / 1024}, fitted {loaded.Native / 1024}/" +
            $"{loaded.Managed / 1024}, disposed {released.Native / 1024}/{released.Managed / 1024}; tables {modelBytes / 1024}";
        output.WriteLine(report);
        Assert.True(loaded.Bytes - baseline.Bytes > modelBytes, report);
        // malloc's in-use count moves by a few MB between identical runs (thread caches, the runtime's own allocations):
        // a third of what the models added is far above that and far below keeping them.
        Assert.True(released.Bytes - baseline.Bytes < (loaded.Bytes - baseline.Bytes) / 3, report);
        Assert.Throws<ObjectDisposedException>(() => language.Generate("the"));
    }

    [Fact]
    public void A_model_its_owning_engine_disposed_says_so_and_how_to_share_one()
    {
        var ml = new MLContext(seed: 1);
        var tabularData = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(32, 1));
        using var tabular = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(tabularData);
        var textData = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        using var text = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 1)).Fit(textData);

        ml.Model.CreatePredictionEngine<TabularRows.Regression, TabularScore>(tabular).Dispose();   // owns the transformer by default
        ml.Model.CreatePredictionEngine<ClassificationRows.BinaryRow, TabularScore>(text).Dispose();

        foreach (var (model, data, name) in new[] { ((ITransformer)tabular, tabularData, "tabular model"), (text, textData, "text classifier") })
        {
            var e = Assert.Throws<ObjectDisposedException>(() => model.Transform(data).GetColumn<float>("Score").ToArray());
            Assert.Contains($"MemoryFormer {name}", e.Message);
            Assert.Contains("OwnsTransformer = false", e.Message);
        }
    }

    private sealed class TabularScore
    {
        public float Score { get; set; }
    }
}
