using Microsoft.ML.MemoryFormer.MLNet;
using TorchSharp;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>Same data, seed and thread count give byte-identical saved models (docs/reliability.md, "Determinism").</summary>
public sealed class DeterminismTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("mf-determinism-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    private (byte[] Standalone, byte[] MLNet, byte[] PlainMLNet) TrainAndSave(string name)
    {
        var ml = new MLContext(seed: 7);
        var data = ml.Data.LoadFromEnumerable(Corpus);
        using var model = ml.Text.MemoryFormer(NanoOptions(steps: 6)).Fit(data);
        var standalone = Path.Combine(folder, name + ".mfa");
        var zip = Path.Combine(folder, name + ".zip");
        model.Save(standalone);
        ml.Model.SaveAtomically(model, data.Schema, zip);
        using var plain = new MemoryStream();
        ml.Model.Save(model, data.Schema, plain);
        return (File.ReadAllBytes(standalone), File.ReadAllBytes(zip), plain.ToArray());
    }

    [Fact]
    public void Training_twice_with_the_same_seed_and_threads_saves_byte_identical_files()
    {
        int threads = torch.get_num_threads();
        torch.set_num_threads(1);
        try
        {
            var first = TrainAndSave("first");
            Thread.Sleep(2100);                                   // zip time stamps have a 2 s resolution: make them differ
            var second = TrainAndSave("second");

            Assert.Equal(first.Standalone, second.Standalone);
            Assert.Equal(first.MLNet, second.MLNet);
            Assert.NotEqual(first.PlainMLNet, second.PlainMLNet);     // why SaveAtomically exists: ML.NET stamps the save time
        }
        finally
        {
            torch.set_num_threads(threads);
        }
    }

    [Fact]
    public void SaveAtomically_writes_a_model_that_MLNet_loads_with_identical_outputs()
    {
        var ml = new MLContext(seed: 1);
        using var model = TinyModelFiles.NewTransformer();
        var path = Path.Combine(folder, "tiny.zip");
        ml.Model.SaveAtomically(model, null, path);

        var fresh = new MLContext(seed: 2);
        fresh.ComponentCatalog.RegisterMemoryFormer();
        using var loaded = TinyModelFiles.Unwrap(fresh.Model.Load(path, out _));

        Assert.Equal(TinyModelFiles.Logits(model), TinyModelFiles.Logits(loaded));
        Assert.Equal([path], Directory.GetFiles(folder));
    }
}
