using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.MLNet;
using TorchSharp;
using Xunit.Abstractions;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// The library's entry points make every tensor inside a dispose scope, so none can be finalized while libtorch still
/// reads it (docs/reliability.md, "Finalizers and native calls"): run without the test project's per-test scope,
/// fitting (language model, text classifier, tabular), evaluating, scoring, generating, saving and
/// reloading create no tensor outside a scope on the calling thread
/// (TorchSharp's own count), and give the same bits with a thread forcing garbage collections back to back.
/// </summary>
public class GarbageCollectionRaceTests(ITestOutputHelper output)
{
    [Fact]
    [WithoutTorchScope]
    public void Entry_points_create_no_tensor_outside_a_scope_and_give_the_same_bits_under_constant_collections()
    {
        var statistics = DisposeScopeManager.Statistics;
        statistics.Reset();
        var quiet = Run();
        output.WriteLine(statistics.ToString());
        Assert.True(statistics.CreatedInScopeCount > 1000, $"only {statistics.CreatedInScopeCount} tensors counted: the run did not reach torch");
        Assert.Equal(0, statistics.CreatedOutsideScopeCount);

        var stressed = WithCollections(Run);
        Assert.Equal(quiet.Text, stressed.Text);
        Assert.Equal(quiet.Scores, stressed.Scores);
        Assert.Equal(quiet.Scores, quiet.Reloaded);
        Assert.Equal(quiet.Reloaded, stressed.Reloaded);
        Assert.Equal(quiet.Perplexity, stressed.Perplexity);
        Assert.Equal(quiet.Classes, stressed.Classes);
        Assert.False(string.IsNullOrEmpty(quiet.Text));
    }

    private static (string Text, float[] Scores, float[] Reloaded, double Perplexity, float[] Classes) Run()
    {
        var ml = new MLContext(seed: 1);
        var options = NanoOptions(steps: 3);
        options.Architecture = options.Architecture with { Layers = 1 };
        string text;
        double perplexity;
        using (var language = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus)))
        {
            text = language.Generate("the", new GenerationOptions { Temperature = 0, MaxNewTokens = 24 });
            perplexity = language.Evaluate(ml.Data.LoadFromEnumerable(Corpus)).Perplexity;
        }

        var texts = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        float[] classes;
        using (var classifier = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 2)).Fit(texts))
            classes = classifier.Transform(texts).GetColumn<float>("Score").ToArray();

        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(48, 3));
        using var tabular = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 3)).Fit(data);
        var scores = tabular.Transform(data).GetColumn<float>("Score").ToArray();
        using var stream = new MemoryStream();
        ml.Model.Save(tabular, data.Schema, stream);
        stream.Position = 0;
        var reloaded = ml.Model.Load(stream, out _);
        var again = reloaded.Transform(data).GetColumn<float>("Score").ToArray();
        (reloaded as IDisposable)?.Dispose();
        return (text, scores, again, perplexity, classes);
    }

    private static T WithCollections<T>(Func<T> run)
    {
        bool stop = false;
        var collector = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                GC.Collect(0);
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            return run();
        }
        finally
        {
            Volatile.Write(ref stop, true);
            collector.Join();
        }
    }
}
