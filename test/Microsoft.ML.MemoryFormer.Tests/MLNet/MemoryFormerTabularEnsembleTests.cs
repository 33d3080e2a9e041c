using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Tests.Reliability;
using Microsoft.ML.MemoryFormer.Tests.Training;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

// Inside the namespace, so that ml.Model.ConvertToOnnx binds to this library's overloads before ML.NET's (OnnxConverterPipelineTests).
using Microsoft.ML.MemoryFormer.Onnx;

/// <summary>Deep ensembles of the tabular trainer (<see cref="MemoryFormerTabularOptions.EnsembleSize"/>).</summary>
public class MemoryFormerTabularEnsembleTests
{
    /// <summary>Tiny options with early stopping on, so each member's hold-out (drawn with its seed) matters too.</summary>
    private static MemoryFormerTabularOptions Options(int? members, int seed = 7)
    {
        var options = TabularRows.TinyOptions(epochs: 2);
        (options.EnsembleSize, options.Seed, options.EarlyStoppingPatience) = (members, seed, 2);
        return options;
    }

    [Fact]
    public void An_ensemble_of_three_predicts_the_mean_of_single_models_trained_with_seeds_s_to_s_plus_2()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(96, 1));
        var test = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(32, 2));
        using var ensemble = ml.Regression.Trainers.MemoryFormerTabular(Options(3)).Fit(train);
        Assert.Equal(3, ensemble.EnsembleSize);
        Assert.Equal(3, ensemble.MemberTrainingResults!.Count);
        var singles = new List<float[]>();
        for (int seed = 7; seed < 10; seed++)
        {
            using var single = ml.Regression.Trainers.MemoryFormerTabular(Options(1, seed)).Fit(train);
            Assert.Equal(1, single.EnsembleSize);
            singles.Add(single.Transform(test).GetColumn<float>("Score").ToArray());
        }
        Assert.NotEqual(singles[0], singles[1]);                          // the seeds make different members
        var scores = ensemble.Transform(test).GetColumn<float>("Score").ToArray();
        for (int r = 0; r < scores.Length; r++)
            Assert.Equal(singles.Average(s => s[r]), scores[r], 1e-4);
        var metrics = ml.Regression.Evaluate(ensemble.Transform(test));
        Assert.True(double.IsFinite(metrics.RootMeanSquaredError));
    }

    [Fact]
    public void A_binary_ensemble_averages_probabilities_and_works_with_Evaluate_and_PredictionEngine()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(96, 3));
        var test = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(32, 4));
        using var ensemble = ml.BinaryClassification.Trainers.MemoryFormerTabular(Options(2)).Fit(train);
        using var first = ml.BinaryClassification.Trainers.MemoryFormerTabular(Options(1, 7)).Fit(train);
        using var second = ml.BinaryClassification.Trainers.MemoryFormerTabular(Options(1, 8)).Fit(train);
        var p1 = first.Transform(test).GetColumn<float>("Probability").ToArray();
        var p2 = second.Transform(test).GetColumn<float>("Probability").ToArray();
        var scored = ensemble.Transform(test);
        var probabilities = scored.GetColumn<float>("Probability").ToArray();
        var labels = scored.GetColumn<bool>("PredictedLabel").ToArray();
        for (int r = 0; r < probabilities.Length; r++)
        {
            Assert.Equal((p1[r] + p2[r]) / 2, probabilities[r], 1e-4);
            Assert.Equal(probabilities[r] > 0.5f, labels[r]);
        }
        Assert.InRange(ml.BinaryClassification.Evaluate(scored).Accuracy, 0, 1);
        var engine = ml.Model.CreatePredictionEngine<TabularRows.Binary, BinaryRow>(ensemble);
        Assert.Equal(probabilities[0], engine.Predict(TabularRows.BinaryRows(32, 4).First()).Probability, 1e-4f);
    }

    [Fact]
    public void A_multiclass_ensemble_scores_mean_class_probabilities()
    {
        var ml = new MLContext(1);
        var train = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(TabularRows.MulticlassRows(96, 5)))
            .Transform(ml.Data.LoadFromEnumerable(TabularRows.MulticlassRows(96, 5)));
        using var ensemble = ml.MulticlassClassification.Trainers.MemoryFormerTabular(Options(2)).Fit(train);
        using var first = ml.MulticlassClassification.Trainers.MemoryFormerTabular(Options(1, 7)).Fit(train);
        using var second = ml.MulticlassClassification.Trainers.MemoryFormerTabular(Options(1, 8)).Fit(train);
        float[][] Scores(ITransformer model) => model.Transform(train).GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();
        var (mean, a, b) = (Scores(ensemble), Scores(first), Scores(second));
        for (int r = 0; r < mean.Length; r++)
        {
            Assert.Equal(1, mean[r].Sum(), 1e-4);
            for (int c = 0; c < mean[r].Length; c++) Assert.Equal((a[r][c] + b[r][c]) / 2, mean[r][c], 1e-4);
        }
        Assert.InRange(ml.MulticlassClassification.Evaluate(ensemble.Transform(train)).MicroAccuracy, 0, 1);

        using var stream = new MemoryStream();
        ml.Model.ConvertToOnnx(ensemble, train, stream);                          // one graph: the mean of the members' probabilities
        var features = train.GetColumn<float[]>("Features").ToArray();
        var outputs = Onnx.OnnxRunner.Run(stream.ToArray(),
            Onnx.OnnxRunner.Floats(MemoryFormerOnnxNames.Features, features.SelectMany(f => f).ToArray(), features.Length, 4));
        Onnx.OnnxRunner.AssertClose([.. mean.SelectMany(m => m)], outputs[MemoryFormerOnnxNames.Probabilities].Values, "probabilities");
        Onnx.OnnxRunner.AssertClose([.. mean.SelectMany(m => m).Select(p => MathF.Log(p))], outputs[MemoryFormerOnnxNames.Logits].Values, "logits");
    }

    [Fact]
    public void A_saved_ensemble_loads_with_identical_scores_and_exports_to_ONNX_as_one_graph()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 1));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(Options(3)).Fit(train);
        var path = Path.Combine(Path.GetTempPath(), $"mf-tab-ens-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext(2);
            var loaded = fresh.Model.Load(path, out _);
            var before = model.Transform(train).GetColumn<float>("Score").ToArray();
            var after = loaded.Transform(fresh.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 1))).GetColumn<float>("Score").ToArray();
            Assert.Equal(before, after);
            var reloaded = Assert.IsType<MemoryFormerTabularTransformer>(loaded);
            Assert.Equal(3, reloaded.EnsembleSize);
            Assert.Null(reloaded.TrainingResult);
            using (var stream = new MemoryStream())
            {
                reloaded.ExportToOnnx(stream);
                var features = train.GetColumn<float[]>("Features").ToArray();
                var outputs = Onnx.OnnxRunner.Run(stream.ToArray(),
                    Onnx.OnnxRunner.Floats(MemoryFormerOnnxNames.Features, features.SelectMany(f => f).ToArray(), features.Length, 4));
                Onnx.OnnxRunner.AssertClose(before, outputs[MemoryFormerOnnxNames.Score].Values, "Score");
                using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(stream.ToArray());
                Assert.Equal("3", session.ModelMetadata.CustomMetadataMap[MemoryFormerOnnxNames.EnsembleSizeKey]);
            }
            reloaded.Dispose();
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void A_single_model_saved_before_ensembles_loads_as_one_member()
    {
        var zip = Path.Combine(AppContext.BaseDirectory, "MLNet", "Fixtures", "tabular-mlnet-6.0.0.zip");
        Assert.True(File.Exists(zip), $"fixture {zip} is missing from the test output");
        var loaded = Assert.IsType<MemoryFormerTabularTransformer>(new MLContext(3).Model.Load(zip, out _));
        Assert.Equal(1, loaded.EnsembleSize);
        loaded.Dispose();
    }

    [Theory]
    [InlineData("{\"FormatVersion\":2,\"Members\":2}", "layout version 2")]
    [InlineData("{\"FormatVersion\":1,\"Members\":99}", "99 members")]
    [InlineData("{\"FormatVersion\":1,\"Members\":2}", "member_0.")]
    public void A_damaged_ensemble_layout_is_refused_with_what_is_wrong(string layout, string expected)
    {
        var archive = new ModelArchive().SetText(TabularEnsemblePredictor.Entry, layout);
        var e = Assert.Throws<InvalidDataException>(() => TabularEnsemblePredictor.FromArchive(archive, TorchSharp.torch.CPU));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(MemoryFormerTabularOptions.MaxEnsembleSize + 1)]
    public void A_bad_ensemble_size_is_refused_by_name(int size)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(1).Regression.Trainers.MemoryFormerTabular(Options(size)));
        Assert.Equal(nameof(MemoryFormerTabularOptions.EnsembleSize), e.ParamName);
        Assert.Contains("EnsembleSize", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_default_ensemble_is_five_models_below_the_small_table_size_and_one_above_unless_set()
    {
        var options = new MemoryFormerTabularOptions();
        Assert.Null(options.EnsembleSize);
        Assert.Equal(MemoryFormerTabularOptions.SmallTableEnsembleSize, options.EnsembleSizeFor(500));
        Assert.Equal(5, MemoryFormerTabularOptions.SmallTableEnsembleSize);
        Assert.Equal(1, options.EnsembleSizeFor(MemoryFormerTabularOptions.SmallTableRows));
        Assert.Equal(1, new MemoryFormerTabularOptions { EnsembleSize = 1 }.EnsembleSizeFor(500));
        Assert.Equal(3, new MemoryFormerTabularOptions { EnsembleSize = 3 }.EnsembleSizeFor(100_000));
        Assert.Equal(1, new MemoryFormerTabularOptions { SizeAwareDefaults = false }.EnsembleSizeFor(500));
    }

    [Fact]
    public void Fitting_twice_with_a_seed_gives_identical_ensembles_and_progress_names_each_member()
    {
        var ml = new MLContext(1);
        var train = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(64, 3));
        var reports = new List<TrainingProgress>();
        var lines = new List<string>();
        var options = Options(2);
        (options.Progress, options.Log) = (new Recorder(reports), lines.Add);
        using var first = ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(train);
        using var second = ml.BinaryClassification.Trainers.MemoryFormerTabular(Options(2)).Fit(train);
        Assert.Equal(first.Transform(train).GetColumn<float>("Score").ToArray(), second.Transform(train).GetColumn<float>("Score").ToArray());
        Assert.Equal([1, 2], reports.Select(p => p.EnsembleMember).Distinct().ToArray());
        Assert.All(reports, p => Assert.Equal(2, p.EnsembleSize));
        Assert.Contains(lines, l => l.Contains("ensemble member 2 of 2: seed 8", StringComparison.Ordinal));
    }

    [Fact]
    public void A_Fit_cancelled_in_the_second_member_disposes_the_first()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(96, 1));
        static long LiveTensorsLeftBy(Action run)
        {
            run();                                             // first run: lazily built caches are not a leak
            long before = MemoryProbe.Measure().Tensors;
            run();
            return MemoryProbe.Measure().Tensors - before;
        }
        MemoryFormerTabularOptions Tiny(int members, Func<TrainingProgress, bool>? cancelWhen, CancellationTokenSource cancel)
        {
            var o = TabularRows.TinyOptions(epochs: 2);         // no early stopping: every member takes the same steps
            o.EnsembleSize = members;
            if (cancelWhen is not null)
                (o.CancellationToken, o.Progress) = (cancel.Token, new SynchronousProgress(p => { if (cancelWhen(p)) cancel.Cancel(); }));
            return o;
        }
        long Cancelled(int members, Func<TrainingProgress, bool> when) => LiveTensorsLeftBy(() =>
        {
            using var cancel = new CancellationTokenSource();
            Assert.ThrowsAny<OperationCanceledException>(() => ml.Regression.Trainers.MemoryFormerTabular(Tiny(members, when, cancel)).Fit(data));
        });
        long completedSingle = LiveTensorsLeftBy(() =>
        {
            using var none = new CancellationTokenSource();
            ml.Regression.Trainers.MemoryFormerTabular(Tiny(1, null, none)).Fit(data).Dispose();
        });
        long cancelledSingle = Cancelled(1, _ => true);
        long cancelledSecond = Cancelled(2, p => p.EnsembleMember == 2);
        // What TorchSharp's count keeps of a model depends on the steps it took (see MemoryProbe), so the yardstick is one
        // completed and disposed member plus one cancelled at its first report; a kept first member leaves more.
        Assert.Equal(completedSingle + cancelledSingle, cancelledSecond);
    }

    private sealed class Recorder(List<TrainingProgress> reports) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => reports.Add(value);
    }

    private sealed class BinaryRow
    {
        public float Probability { get; set; }
    }
}
