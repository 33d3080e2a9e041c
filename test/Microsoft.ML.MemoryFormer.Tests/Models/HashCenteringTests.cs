using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Interop;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Onnx;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Tests.Reliability;
using Microsoft.ML.MemoryFormer.Tests.Training;
using Microsoft.ML.MemoryFormer.Training;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

/// <summary><see cref="MemoryFormerConfig.HashCentering"/>: per-channel centring of every Memory Layer's hash input.</summary>
public class HashCenteringTests
{
    private static readonly MemoryFormerConfig Centred = MemoryFormerConfig.Nano with { HashCentering = HashCentering.RunningMean };

    /// <summary>x [N, w] with a different offset per channel, so an uncentred channel's sign would lean.</summary>
    private static Tensor Offset(int n, int width, int seed)
    {
        random.manual_seed(seed);
        return randn(n, width) + linspace(-2, 2, width);                        // [N, w]
    }

    [Fact]
    public void Training_centres_each_channel_on_the_batch_and_folds_it_into_the_running_mean_which_evaluation_keeps()
    {
        using var centre = new HashCentre(8);
        var x = Offset(32, 8, 1);
        var y = centre.call(x);                                                 // training: the batch's mean
        Assert.True(y.mean([0]).abs().max().item<float>() < 1e-5f);
        var expected = x.mean([0]) * HashCentre.Momentum;                       // from a zero start
        Assert.True(centre.RunningMean.allclose(expected, rtol: 1e-5, atol: 1e-6));
        Assert.True(x.mean([0]).abs().max().item<float>() > 1f);               // the offsets were there to remove

        var second = Offset(32, 8, 2);
        centre.call(second);
        expected = (expected * (1 - HashCentre.Momentum)) + (second.mean([0]) * HashCentre.Momentum);
        Assert.True(centre.RunningMean.allclose(expected, rtol: 1e-5, atol: 1e-6));

        centre.eval();
        var frozen = centre.RunningMean.clone();
        var z = Offset(5, 8, 3);
        Assert.Equal((z - frozen).data<float>().ToArray(), centre.call(z).data<float>().ToArray());                          // evaluation subtracts the running mean
        Assert.Equal(frozen.data<float>().ToArray(), centre.RunningMean.data<float>().ToArray());                          // and leaves it as it was
    }

    [Fact]
    public void The_median_centring_balances_every_sign_bit_on_the_training_batch()
    {
        using var centre = new HashCentre(8, HashCentering.RunningMedian);
        var x = Offset(33, 8, 11).pow(3);                                       // skewed channels: mean and median apart
        var y = centre.call(x);
        var ones = y.ge(0).sum([0]).data<long>().ToArray();                     // [w] tokens whose bit is 1
        Assert.All(ones, n => Assert.Equal(17, n));                            // the 17th of 33 is the median
        Assert.True(centre.RunningMean.allclose(x.kthvalue(17, 0).values * HashCentre.Momentum, rtol: 1e-5, atol: 1e-6));
        using var mean = new HashCentre(8, HashCentering.RunningMeanDetached);
        Assert.Contains(mean.call(x).ge(0).sum([0]).data<long>().ToArray(), n => n != 17);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_backward_removes_each_channels_mean_gradient_unless_the_batch_mean_is_detached(bool detached)
    {
        using var centre = new HashCentre(4, detached ? HashCentering.RunningMeanDetached : HashCentering.RunningMean);
        var x = Offset(6, 4, 4).requires_grad_();
        var weights = Offset(6, 4, 5);
        (centre.call(x) * weights).sum().backward();
        var expected = detached ? weights : weights - weights.mean([0]);       // batch norm's centring backward
        Assert.True(x.grad!.allclose(expected, rtol: 1e-5, atol: 1e-6));
        Assert.Equal(detached, x.grad!.sum([0]).abs().max().item<float>() > 1e-3f);
    }

    [Fact]
    public void Q_K_V_read_the_centred_input_with_both_their_rows_and_their_weights()
    {
        random.manual_seed(6);
        using var qkv = new MemoryQkv(Centred);
        qkv.eval();
        using var noGrad = no_grad();
        qkv.Centre!.RunningMean.copy_(linspace(-1, 1, Centred.Width));
        var x = Offset(7, Centred.Width, 7);
        var (q, k, v) = qkv.call(x);
        var centred = x - qkv.Centre.RunningMean;                               // [N, d]
        Assert.True(q.allclose(qkv.Query.call(centred), rtol: 1e-5, atol: 1e-6));
        Assert.True(k.allclose(qkv.Key.call(centred), rtol: 1e-5, atol: 1e-6));
        Assert.True(v.allclose(qkv.Value.call(centred), rtol: 1e-5, atol: 1e-6));
        Assert.False(q.allclose(qkv.Query.call(x), rtol: 1e-3, atol: 1e-4));   // the centring changed something
    }

    [Fact]
    public void Fused_and_reference_kernels_agree_with_centring_on_forward_and_backward()
    {
        (Tensor Logits, Tensor[] Grads, Tensor[] Means) Run(bool fused)
        {
            Tensor logits = null!;
            Tensor[] grads = null!, means = null!;
            KernelSettings.Current.With(k => k.UseFusedKernels = fused, () =>
            {
                random.manual_seed(8);
                using var model = new LanguageModel(Centred);
                var tokens = randint(0, Centred.VocabularySize, [2, 12]);
                logits = model.call(tokens).detach();                           // [2, 12, V], training mode
                model.call(tokens).pow(2).mean().backward();
                grads = model.parameters().Select(p => p.grad!.clone()).ToArray();
                means = model.buffers().Select(b => b.clone()).ToArray();
            });
            return (logits, grads, means);
        }
        var fused = Run(fused: true);
        var reference = Run(fused: false);
        Assert.True(fused.Logits.allclose(reference.Logits, rtol: 1e-4, atol: 1e-5));
        Assert.Equal(reference.Grads.Length, fused.Grads.Length);
        for (int i = 0; i < fused.Grads.Length; i++)
            Assert.True(fused.Grads[i].allclose(reference.Grads[i], rtol: 1e-3, atol: 1e-5), $"parameter {i}");
        Assert.Equal(3 * Centred.Layers, fused.Means.Length);                   // Q/K/V, ML₁, ML₂ per block
        for (int i = 0; i < fused.Means.Length; i++)
            Assert.True(fused.Means[i].allclose(reference.Means[i], rtol: 1e-4, atol: 1e-6), $"running mean {i}");
        Assert.True(fused.Means.All(m => m.abs().sum().item<float>() > 0));    // two training forwards moved them
    }

    [Fact]
    public void A_fitted_model_is_deterministic_saves_its_running_means_and_loads_scoring_the_same()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Corpus);
        using var model = ml.Text.MemoryFormer(Options()).Fit(data);
        using var again = ml.Text.MemoryFormer(Options()).Fit(data);
        Assert.Equal(model.TrainingResult!.LossHistory, again.TrainingResult!.LossHistory);
        var means = model.Model.buffers().Select(b => b.clone()).ToArray();
        Assert.Equal(3 * Centred.Layers, means.Length);
        Assert.True(means.All(m => m.abs().sum().item<float>() > 0));
        var path = Path.Combine(Path.GetTempPath(), $"centred-{Guid.NewGuid():N}.mfm");
        try
        {
            model.Save(path);
            using var loaded = MemoryFormerLanguageModelTransformer.Load(path);
            Assert.Equal(HashCentering.RunningMean, loaded.Model.Config.HashCentering);
            Assert.Equal(means.Select(m => m.data<float>().ToArray()), loaded.Model.buffers().Select(b => b.data<float>().ToArray()));
            Assert.Equal(ml.Text.EvaluateLanguageModel(model, data).TotalNats, ml.Text.EvaluateLanguageModel(loaded, data).TotalNats);
            Assert.Equal(model.Generate("the ", Greedy), loaded.Generate("the ", Greedy));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_run_resumed_from_its_checkpoint_matches_the_uninterrupted_run_running_means_included()
    {
        using var folder = new CheckpointFolder();
        var expected = FitResult(Options(folder.File("full.ckpt")));
        using var cancel = new CancellationTokenSource();
        var cancelled = Options(folder.File("run.ckpt"), p => { if (p.Step == 7) cancel.Cancel(); }, cancel.Token);
        Assert.ThrowsAny<OperationCanceledException>(() => FitResult(cancelled));
        var resumed = FitResult(Options(folder.File("run.ckpt")));
        Assert.Equal(expected.LossHistory, resumed.LossHistory);
        Assert.Equal(expected.BestValidationLoss, resumed.BestValidationLoss);  // validation reads the running means
        var tensors = CheckpointFolder.Tensors(folder.File("full.ckpt"));
        Assert.Equal(tensors, CheckpointFolder.Tensors(folder.File("run.ckpt")));
    }

    [Fact]
    public void An_older_reader_which_builds_the_uncentred_model_refuses_the_weights()
    {
        random.manual_seed(9);
        using var centred = new LanguageModel(Centred);
        var weights = ModuleWeights.ToBytes(centred);
        var json = Centred.ToJson();
        Assert.Contains("\"HashCentering\": \"RunningMean\"", json);
        using var plain = new LanguageModel(MemoryFormerConfig.Nano);        // what a reader that ignores the field builds
        var e = Assert.Throws<InvalidDataException>(() => ModuleWeights.Load(plain, weights, MemoryFormerConfig.Nano));
        Assert.Contains("The saved weights do not fit", e.Message);           // refused, not loaded without the means
    }

    [Fact]
    public void Off_by_default_the_config_json_and_the_state_dict_are_unchanged()
    {
        Assert.Equal(HashCentering.None, MemoryFormerConfig.Nano.HashCentering);
        Assert.DoesNotContain(nameof(MemoryFormerConfig.HashCentering), MemoryFormerConfig.Nano.ToJson());
        using var plain = new LanguageModel(MemoryFormerConfig.Nano);
        Assert.DoesNotContain(plain.state_dict().Keys, k => k.Contains("centre", StringComparison.Ordinal));
        Assert.Empty(plain.buffers());
        Assert.Equal(HashCentering.RunningMean, MemoryFormerConfig.FromJson(Centred.ToJson()).HashCentering);
        var e = Assert.Throws<ArgumentException>(() => (Centred with { Kind = TransformerKind.Dense }).Validate());
        Assert.Contains(nameof(MemoryFormerConfig.HashCentering), e.Message);
    }

    [Fact]
    public void Fused_inference_paths_step_aside_and_exports_say_the_option_is_not_supported()
    {
        random.manual_seed(10);
        using var model = new LanguageModel(Centred);
        model.eval();
        var caches = model.Backbone.NewCaches(1, CPU);
        Assert.Null(FusedDecodeStep.TryCreate(model, caches));
        foreach (var c in caches) c.Dispose();
        Assert.False(FusedEncoder.Supports(model.Backbone));
        var folder = Path.Combine(Path.GetTempPath(), $"centred-{Guid.NewGuid():N}");
        Exception?[] errors =
        [
            Record.Exception(() => model.ExportToOnnx(new MemoryStream())),
            Record.Exception(() => model.ExportSafetensors(folder)),
            Record.Exception(() => model.ExportGptNeoXCheckpoint(folder)),
        ];
        foreach (var e in errors)
        {
            var notSupported = Assert.IsType<NotSupportedException>(e is NotSupportedException ? e : e?.InnerException);
            Assert.Contains(nameof(MemoryFormerConfig.HashCentering), notSupported.Message);
        }
        Assert.False(Directory.Exists(folder) && Directory.EnumerateFiles(folder).Any());
    }

    /// <summary>Nano with centring, 16 steps, validation every 4 steps (the running means' work) and a checkpoint every 5.</summary>
    private static MemoryFormerLanguageModelEstimator.Options Options(string? checkpoint = null, Action<TrainingProgress>? onStep = null,
        CancellationToken cancel = default)
    {
        var o = NanoOptions(steps: 16);
        o.Architecture = Centred;
        o.Seed = 5;
        o.ReportEvery = 1;
        o.ValidateEvery = 4;
        o.CheckpointPath = checkpoint;
        o.CheckpointEverySteps = 5;
        o.CancellationToken = cancel;
        if (onStep is not null) o.Progress = new SynchronousProgress(onStep);
        return o;
    }

    private static TrainingResult FitResult(MemoryFormerLanguageModelEstimator.Options options)
    {
        var ml = new MLContext(seed: 1);
        using var model = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus));
        return model.TrainingResult!;
    }
}
