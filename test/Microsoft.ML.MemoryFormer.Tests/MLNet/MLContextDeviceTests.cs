using Microsoft.ML.MemoryFormer.MLNet;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>
/// <see cref="MLContext.GpuDeviceId"/> and <see cref="MLContext.FallbackToCpu"/> reach every trainer and loader: on a
/// machine without CUDA, asking for GPU 0 without a CPU fallback must fail (it used to train or load on the CPU
/// silently, because trainers and loaders see a host, not the MLContext).
/// </summary>
public class MLContextDeviceTests
{
    private static MLContext GpuOnly(int seed) => new(seed) { GpuDeviceId = 0, FallbackToCpu = false };

    private static void SkipWithCuda() =>
        Skip.If(torch.cuda.is_available(), "CUDA is available here: GPU 0 is a valid device, so nothing can fail.");

    [SkippableFact]
    public void The_text_classifier_trains_only_where_the_MLContext_says()
    {
        SkipWithCuda();
        var ml = GpuOnly(1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        var e = Assert.Throws<InvalidOperationException>(() =>
            ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 1)).Fit(data));
        Assert.Contains("GPU device 0 was asked for (MLContext.GpuDeviceId", e.Message);
    }

    [SkippableFact]
    public void The_tabular_trainer_trains_only_where_the_MLContext_says()
    {
        SkipWithCuda();
        var ml = GpuOnly(1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(32, 1));
        var e = Assert.Throws<InvalidOperationException>(() =>
            ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 1)).Fit(data));
        Assert.Contains("GPU device 0 was asked for (MLContext.GpuDeviceId", e.Message);
    }

    [SkippableFact]
    public void The_text_classifier_and_tabular_loaders_load_only_where_the_MLContext_says()
    {
        SkipWithCuda();
        var cpu = new MLContext(1);
        var text = cpu.Data.LoadFromEnumerable(ClassificationRows.Binary());
        var table = cpu.Data.LoadFromEnumerable(TabularRows.RegressionRows(32, 1));
        using var classifier = cpu.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 1)).Fit(text);
        using var tabular = cpu.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 1)).Fit(table);

        foreach (var (model, data) in new (ITransformer, IDataView)[] { (classifier, text), (tabular, table) })
        {
            using var stream = new MemoryStream();
            cpu.Model.Save(model, data.Schema, stream);
            stream.Position = 0;
            var gpu = GpuOnly(2);
            gpu.ComponentCatalog.RegisterMemoryFormer();
            var e = Assert.ThrowsAny<Exception>(() => gpu.Model.Load(stream, out _));
            Assert.Contains("GPU device 0 was asked for (MLContext.GpuDeviceId", Messages(e));

            // LoadChecked reports a setting to change, not a damaged file.
            stream.Position = 0;
            var setting = Assert.Throws<InvalidOperationException>(() => gpu.Model.LoadChecked(stream, out _));
            Assert.Contains("GPU device 0 was asked for", setting.Message);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(1) { GpuDeviceId = -1 }.Regression.Trainers
            .MemoryFormerTabular(TabularRows.TinyOptions(epochs: 1)).Fit(table));
    }

    private static string Messages(Exception e) => e.InnerException is null ? e.Message : e.Message + " | " + Messages(e.InnerException);
}
