using Microsoft.ML.MemoryFormer.MLNet;
using Xunit.Abstractions;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// A process killed while it saves leaves the previous model intact (docs/reliability.md, "Crash-safe saving"): the test
/// host saves 18 MB versions to one path in a loop and is killed at varied moments, several of them mid-save.
/// </summary>
public sealed class CrashSafeSavingTests(ITestOutputHelper output) : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("mf-crash-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public void Saving_into_a_missing_folder_names_the_folder_and_writes_nothing()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(MLNet.TabularRows.RegressionRows(16, 1));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(MLNet.TabularRows.TinyOptions(1)).Fit(data);
        var missing = Path.Combine(folder, "not-yet");
        var e = Assert.Throws<DirectoryNotFoundException>(() => ml.Model.SaveAtomically(model, data.Schema, Path.Combine(missing, "model.zip")));
        Assert.Contains($"its folder '{missing}' does not exist", e.Message);
        Assert.False(Directory.Exists(missing));
    }

    /// <param name="mlnet">Save with <c>mlContext.Model.SaveAtomically</c> rather than the standalone checkpoint.</param>
    /// <param name="killAt">When to kill each run, as a fraction of the duration of the run's previous save, counted
    /// from the start of the next one: early (while the model is serialised), mid-write, near the rename.</param>
    [Theory]
    [InlineData(false, new[] { 0.2, 0.5, 0.8 })]
    [InlineData(true, new[] { 0.4, 0.9 })]
    public void Killing_a_process_mid_save_leaves_one_complete_version(bool mlnet, double[] killAt)
    {
        var path = Path.Combine(folder, mlnet ? "model.zip" : "model.mfa");
        for (int run = 0; run < killAt.Length; run++)
        {
            int first = 1000 * (run + 1), saveMs;
            var args = new List<string> { "save-loop", "--path", path, "--first", first.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            if (mlnet) args.Add("--mlnet");
            using (var child = ChildProcess.Start([.. args]))
            {
                // SAVED first+1 is complete before SAVING first+2 is printed; the kill lands inside the save of first+2.
                var saved = child.WaitForLine(l => l.StartsWith($"SAVED {first + 1} ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
                child.WaitForLine(l => l == $"SAVING {first + 2}", TimeSpan.FromSeconds(10));
                saveMs = int.Parse(saved.Split(' ')[2], System.Globalization.CultureInfo.InvariantCulture);
                Thread.Sleep((int)(killAt[run] * saveMs));
                child.Kill();
            }

            int version = LoadedVersion(path, mlnet);
            output.WriteLine($"run {run}: a save took {saveMs} ms; killed {killAt[run] * saveMs:0} ms into the next; the file holds version {version}; " +
                $"files: {string.Join(", ", Directory.GetFiles(folder).Select(Path.GetFileName))}");
            Assert.InRange(version, first + 1, first + 999);
            Assert.All(Directory.GetFiles(folder), f => Assert.True(f == path || Path.GetFileName(f).StartsWith($".{Path.GetFileName(path)}.", StringComparison.Ordinal)
                && f.EndsWith(".tmp", StringComparison.Ordinal), $"unexpected file {f}"));
            // only the killed run's temporary files (.{file}.{pid}.{guid}.tmp): each run's saves deleted those the run before it left
            var writers = Directory.GetFiles(folder).Where(f => f != path).Select(f => Path.GetFileName(f).Split('.')[^3]).Distinct().ToArray();
            Assert.True(writers.Length <= 1, $"abandoned temporary files of processes {string.Join(", ", writers)} pile up");
        }
    }

    /// <summary>Loads the file and returns v when every parameter equals v (one complete version); fails otherwise.</summary>
    private static int LoadedVersion(string path, bool mlnet)
    {
        using var model = mlnet
            ? TinyModelFiles.Unwrap(new MLContext(seed: 1).Model.LoadChecked(path, out _))
            : MemoryFormerLanguageModelTransformer.Load(path);
        var values = model.Model.parameters().SelectMany(p => new[] { p.min().item<float>(), p.max().item<float>() }).Distinct().ToArray();
        Assert.True(values.Length == 1, $"The saved model mixes versions: {string.Join(", ", values)}");
        return (int)values[0];
    }
}
