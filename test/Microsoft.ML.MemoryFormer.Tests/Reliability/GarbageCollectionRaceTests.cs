using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Tests.MLNet;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// The library's entry points keep every TorchSharp wrapper reachable while libtorch uses it (docs/reliability.md,
/// "Finalizers and native calls"): run without the test project's per-test dispose scope, with a thread forcing a
/// garbage collection every millisecond, fitting, scoring, generating and reloading give the bits of a quiet run.
/// Before the library's scopes and named scalars, such a thread crashed the test host within the first fits.
/// </summary>
public class GarbageCollectionRaceTests
{
    [Fact]
    [WithoutTorchScope]
    public void Fit_score_generate_and_reload_under_constant_collections_give_the_quiet_runs_results()
    {
        var quiet = Run();
        var stressed = WithCollections(Run);
        Assert.Equal(quiet.Text, stressed.Text);
        Assert.Equal(quiet.Scores, stressed.Scores);
        Assert.Equal(quiet.Reloaded, stressed.Reloaded);
        Assert.Equal(quiet.Scores, quiet.Reloaded);
        Assert.False(string.IsNullOrEmpty(quiet.Text));
    }

    private static (string Text, float[] Scores, float[] Reloaded) Run()
    {
        var ml = new MLContext(seed: 1);
        var options = NanoOptions(steps: 3);
        options.Architecture = options.Architecture with { Layers = 1 };
        string text;
        using (var language = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus)))
            text = language.Generate("the", new GenerationOptions { Temperature = 0, MaxNewTokens = 24 });

        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(48, 3));
        using var tabular = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 3)).Fit(data);
        var scores = tabular.Transform(data).GetColumn<float>("Score").ToArray();
        using var stream = new MemoryStream();
        ml.Model.Save(tabular, data.Schema, stream);
        stream.Position = 0;
        var reloaded = ml.Model.Load(stream, out _);
        var again = reloaded.Transform(data).GetColumn<float>("Score").ToArray();
        (reloaded as IDisposable)?.Dispose();
        return (text, scores, again);
    }

    private static T WithCollections<T>(Func<T> run)
    {
        bool stop = false;
        var collector = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                GC.Collect(0);
                Thread.Sleep(1);
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
