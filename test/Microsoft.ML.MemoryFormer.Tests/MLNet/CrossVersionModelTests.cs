using System.Reflection;
using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>
/// A model zip saved under one supported ML.NET version loads under the other. MLNet/Fixtures holds a tiny tabular
/// regression model saved by each version (<c>tabular-mlnet-&lt;version&gt;.zip</c>) with the scores it gave when saved;
/// CI runs these tests against ML.NET 5.0.1 and 6.0.0 (build/build.sh), so each version loads the other's file.
/// To add a version: run <see cref="A_model_saved_now_reloads_with_the_same_scores"/> under it with
/// MEMORYFORMER_WRITE_FIXTURES set to the Fixtures folder and commit the two files it writes.
/// </summary>
public class CrossVersionModelTests
{
    private static readonly string FixtureFolder = Path.Combine(AppContext.BaseDirectory, "MLNet", "Fixtures");

    /// <summary>The ML.NET version this test run loaded, for example "6.0.0".</summary>
    private static string RunningMLNetVersion =>
        typeof(MLContext).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Split('+')[0];

    public static TheoryData<string> Fixtures() => new(["5.0.1", "6.0.0"]);

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void A_model_saved_by_a_supported_MLNet_version_loads_and_scores_as_it_did(string savedBy)
    {
        var zip = Path.Combine(FixtureFolder, $"tabular-mlnet-{savedBy}.zip");
        Assert.True(File.Exists(zip), $"fixture {zip} is missing from the test output");
        var expected = JsonSerializer.Deserialize<float[]>(File.ReadAllText(Path.ChangeExtension(zip, ".scores.json")))!;
        var ml = new MLContext(3);                                      // no registration call: Model.Load finds the loader
        var loaded = ml.Model.Load(zip, out var schema);
        Assert.NotNull(schema);
        var scores = loaded.Transform(ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(16, 2))).GetColumn<float>("Score").ToArray();
        Assert.Equal(expected.Length, scores.Length);
        for (int i = 0; i < scores.Length; i++)
            Assert.Equal(expected[i], scores[i], 1e-4f);
    }

    [Fact]
    public void A_model_saved_now_reloads_with_the_same_scores()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 1));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 2)).Fit(train);
        var scores = model.Transform(ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(16, 2))).GetColumn<float>("Score").ToArray();
        var path = Path.Combine(Path.GetTempPath(), $"mf-xver-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext(2);
            var reloaded = fresh.Model.Load(path, out _)
                .Transform(fresh.Data.LoadFromEnumerable(TabularRows.RegressionRows(16, 2))).GetColumn<float>("Score").ToArray();
            Assert.Equal(scores, reloaded);
            if (Environment.GetEnvironmentVariable("MEMORYFORMER_WRITE_FIXTURES") is { Length: > 0 } folder)
            {
                var target = Path.Combine(folder, $"tabular-mlnet-{RunningMLNetVersion}.zip");
                File.Copy(path, target, overwrite: true);
                File.WriteAllText(Path.ChangeExtension(target, ".scores.json"), JsonSerializer.Serialize(scores));
            }
        }
        finally { File.Delete(path); }
    }
}
