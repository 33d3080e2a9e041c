using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.MLNet;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// One fitted transformer of each kind used from 8 threads at once, each with its own PredictionEngine, and concurrent
/// <c>Transform</c> calls: every thread gets exactly the sequential results (docs/reliability.md "Thread safety").
/// </summary>
public class ThreadSafetyTests
{
    private const int Threads = 8;

    private static readonly GenerationOptions Sampled = new()
    {
        Temperature = 0.9, TopK = 20, TopP = 0.95, RepetitionPenalty = 1.1, MaxNewTokens = 12, Seed = 5,
    };

    private sealed class TextOnly
    {
        public string Text { get; set; } = "";
    }

    private sealed class ClassScores
    {
        public float[] Score { get; set; } = [];
    }

    private sealed class FeaturesOnly
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
    }

    private sealed class Scored
    {
        public float Score { get; set; }
    }

    [Fact]
    public void Seeded_generation_streaming_and_evaluation_give_the_same_results_on_8_threads_as_in_sequence()
    {
        var ml = new MLContext(seed: 1);
        var options = NanoOptions(steps: 10);
        options.Generation = Sampled;
        using var model = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus));
        var prompts = new[] { "the cat", "the dog", "", "a", "the mat 1", "ran to", "log. ", "sat on" };
        var data = ml.Data.LoadFromEnumerable(prompts.Select(p => new PromptRow { Prompt = p }));
        var generated = prompts.Select(p => model.Generate(p)).ToArray();
        var column = model.Transform(data).GetColumn<string>("GeneratedText").ToArray();
        var engine = ml.Model.CreatePredictionEngine<PromptRow, Generated>(model);
        var predicted = prompts.Select(p => engine.Predict(new PromptRow { Prompt = p }).GeneratedText).ToArray();
        var corpus = ml.Data.LoadFromEnumerable(Corpus);
        double nats = model.Evaluate(corpus).TotalNats;
        Assert.Equal(generated[0], string.Concat(model.GenerateStreaming(prompts[0]).ToBlockingEnumerable()));

        var results = OnThreads(thread =>
        {
            var order = Rotated(prompts.Length, thread);
            var own = ml.Model.CreatePredictionEngine<PromptRow, Generated>(model);
            return (Generate: Unrotate(order.Select(i => model.Generate(prompts[i])).ToArray(), order),
                Stream: Unrotate(order.Select(i => string.Concat(model.GenerateStreaming(prompts[i]).ToBlockingEnumerable())).ToArray(), order),
                Nats: model.Evaluate(corpus).TotalNats,
                Predict: Unrotate(order.Select(i => own.Predict(new PromptRow { Prompt = prompts[i] }).GeneratedText).ToArray(), order),
                Transform: model.Transform(data).GetColumn<string>("GeneratedText").ToArray());
        });
        Assert.All(results, r =>
        {
            Assert.Equal(generated, r.Generate);
            Assert.Equal(generated, r.Stream);
            Assert.Equal(nats, r.Nats);
            Assert.Equal(predicted, r.Predict);
            Assert.Equal(column, r.Transform);
        });
    }

    [Fact]
    public void A_text_classifier_scores_the_same_on_8_threads_as_in_sequence()
    {
        var ml = new MLContext(seed: 1);
        var rows = ClassificationRows.Multiclass();
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        using var model = ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 2)).Fit(keyed);
        var texts = rows.Select(r => r.Text).ToArray();
        var data = ml.Data.LoadFromEnumerable(texts.Select(t => new TextOnly { Text = t }));
        var engine = ml.Model.CreatePredictionEngine<TextOnly, ClassScores>(model);
        var predicted = texts.Select(t => engine.Predict(new TextOnly { Text = t }).Score).ToArray();
        var column = model.Transform(data).GetColumn<float[]>("Score").ToArray();

        var results = OnThreads(thread =>
        {
            var order = Rotated(texts.Length, thread);
            var own = ml.Model.CreatePredictionEngine<TextOnly, ClassScores>(model);
            return (Predict: Unrotate(order.Select(i => own.Predict(new TextOnly { Text = texts[i] }).Score).ToArray(), order),
                Transform: model.Transform(data).GetColumn<float[]>("Score").ToArray());
        });
        Assert.All(results, r =>
        {
            Assert.Equal(predicted, r.Predict);
            Assert.Equal(column, r.Transform);
        });
    }

    [Fact]
    public void A_tabular_model_scores_the_same_on_8_threads_as_in_sequence()
    {
        var ml = new MLContext(seed: 1);
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(2)).Fit(ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 1)));
        var features = TabularRows.Points(48, 2, missing: 0.1);
        var data = ml.Data.LoadFromEnumerable(features.Select(f => new FeaturesOnly { Features = f }));
        var engine = ml.Model.CreatePredictionEngine<FeaturesOnly, Scored>(model);
        var predicted = features.Select(f => engine.Predict(new FeaturesOnly { Features = f }).Score).ToArray();
        var column = model.Transform(data).GetColumn<float>("Score").ToArray();

        var results = OnThreads(thread =>
        {
            var order = Rotated(features.Length, thread);
            var own = ml.Model.CreatePredictionEngine<FeaturesOnly, Scored>(model);
            return (Predict: Unrotate(order.Select(i => own.Predict(new FeaturesOnly { Features = features[i] }).Score).ToArray(), order),
                Transform: model.Transform(data).GetColumn<float>("Score").ToArray());
        });
        Assert.All(results, r =>
        {
            Assert.Equal(predicted, r.Predict);
            Assert.Equal(column, r.Transform);
        });
    }

    /// <summary>Runs <paramref name="work"/>(thread index) on <see cref="Threads"/> dedicated threads released together.</summary>
    private static T[] OnThreads<T>(Func<int, T> work)
    {
        var results = new T[Threads];
        var errors = new Exception?[Threads];
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(i => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                results[i] = work(i);
            }
            catch (Exception e) { errors[i] = e; }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        if (errors.Any(e => e is not null)) throw new AggregateException(errors.OfType<Exception>());
        return results;
    }

    /// <summary>0..n−1 started at a thread-dependent offset, so threads work on different rows at the same moment.</summary>
    private static int[] Rotated(int n, int thread) => Enumerable.Range(0, n).Select(i => (i + thread * 3) % n).ToArray();

    private static T[] Unrotate<T>(T[] values, int[] order)
    {
        var result = new T[values.Length];
        for (int i = 0; i < order.Length; i++) result[order[i]] = values[i];
        return result;
    }
}
