using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Tests.MLNet;
using Microsoft.ML.MemoryFormer.Tests.Reliability;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>
/// <see cref="TableGradientClipping.PreviousStep"/> as the default of an unset <see cref="TrainingOptions.TableGradientClipping"/>:
/// a new run uses it and records it in its checkpoint; a checkpoint written while <see cref="TableGradientClipping.Global"/>
/// was the default (no clipping part in run.json) resumes under the unset option and goes on with Global, bit for bit;
/// an explicit other rule is refused naming both; without the fused kernels the default still applies its factor.
/// The same for <see cref="MomentPrecision.BFloat16"/> as the default of an unset <see cref="TrainingOptions.TableMomentPrecision"/>
/// (a checkpoint written while Float32 was the default has no moments part and goes on with Float32).
/// </summary>
public class TableClippingDefaultTests
{
    private const string ClippingPart = "TrainingOptions.TableGradientClipping";
    private const string MomentsPart = "TrainingOptions.TableMomentPrecision";

    /// <summary>8 steps of a small model (d = 64, τ = 8) with a tiny clip norm, so every step is clipped and the rules differ
    /// from step 2 on; cancelled after <paramref name="cancelAfter"/> steps when given.</summary>
    private static (byte[][] Parameters, IReadOnlyList<double> Losses) Train(TableGradientClipping? clipping, string? checkpoint = null,
        int? cancelAfter = null, List<string>? log = null, double clip = 1e-3, MomentPrecision? moments = null)
    {
        random.manual_seed(9);
        var config = MemoryFormerConfig.Nano with { Width = 64, Heads = 2, BitsPerChunk = 8, Layers = 1, ContextLength = 32 };
        using var model = new LanguageModel(config);
        var windows = randint(0, 64, [16, 33], dtype: ScalarType.Int64, generator: new TorchSharp.torch.Generator(3));
        var task = new LanguageModelTask(model, windows, windows, batchSize: 8, seed: 9, CPU);
        var options = new TrainingOptions
        {
            MaxSteps = 8, WarmupSteps = 1, GradientClip = clip, ReportEvery = 1, TableGradientClipping = clipping,
            TableMomentPrecision = moments, CheckpointPath = checkpoint, CheckpointEverySteps = checkpoint is null ? 0 : 2,
        };
        using var cancel = new CancellationTokenSource();
        var progress = new SynchronousProgress(p => { if (p.Step == cancelAfter) cancel.Cancel(); });
        var result = TrainingLoop.Run(model, task, options, progress, log is null ? null : log.Add, cancel.Token);
        return (model.parameters().Select(p => p.bytes.ToArray()).ToArray(), result.LossHistory);
    }

    private static void AssertSameBytes((byte[][] Parameters, IReadOnlyList<double> Losses) a, (byte[][] Parameters, IReadOnlyList<double> Losses) b)
    {
        Assert.Equal(a.Losses, b.Losses);
        Assert.Equal(a.Parameters.Length, b.Parameters.Length);
        for (int i = 0; i < a.Parameters.Length; i++)
            Assert.True(a.Parameters[i].AsSpan().SequenceEqual(b.Parameters[i]), $"parameter {i} differs");
    }

    /// <summary>The parts of a checkpoint's run fingerprint.</summary>
    private static Dictionary<string, string> RunParts(string checkpoint)
    {
        using var archive = ModelArchive.Load(checkpoint);
        return System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(archive.GetText("run.json"))!;
    }

    /// <summary>Cancels a run of <paramref name="clipping"/> after 3 steps, leaving its checkpoint at <paramref name="path"/>.</summary>
    private static void Interrupted(TableGradientClipping? clipping, string path, MomentPrecision? moments = null)
    {
        Assert.ThrowsAny<OperationCanceledException>(() => Train(clipping, path, cancelAfter: 3, moments: moments));
        Assert.Equal(3, CheckpointFolder.StepOf(path));
    }

    [Fact]
    public void An_unset_rule_trains_like_an_explicit_PreviousStep_and_unlike_Global()
    {
        var unset = Train(null);
        AssertSameBytes(Train(TableGradientClipping.PreviousStep), unset);
        Assert.NotEqual(Train(TableGradientClipping.Global).Losses[^1], unset.Losses[^1]);
        Assert.Equal(TableGradientClipping.PreviousStep, TrainingOptions.DefaultTableGradientClipping);
        Assert.Equal(TableGradientClipping.PreviousStep, new TrainingOptions().TableClippingRule);
    }

    [Fact]
    public void A_checkpoint_written_while_Global_was_the_default_resumes_under_the_unset_rule_and_repeats_the_Global_run()
    {
        using var folder = new CheckpointFolder();
        var straight = Train(TableGradientClipping.Global, folder.File("straight.ckpt"));

        // Global is left out of run.json, exactly as every checkpoint was written before the option existed or changed default.
        string path = folder.File("old.ckpt");
        Interrupted(TableGradientClipping.Global, path);
        Assert.DoesNotContain(ClippingPart, RunParts(path).Keys);

        var log = new List<string>();
        var resumed = Train(null, path, log: log);
        AssertSameBytes(straight, resumed);
        Assert.Equal(CheckpointFolder.Tensors(folder.File("straight.ckpt")), CheckpointFolder.Tensors(path));
        Assert.Contains(log, l => l.Contains("TableGradientClipping Global", StringComparison.Ordinal)
            && l.Contains("continues with Global", StringComparison.Ordinal));
        Assert.Contains(log, l => l.Contains("resumed from step 3 of 8", StringComparison.Ordinal));
        Assert.DoesNotContain(ClippingPart, RunParts(path).Keys);          // still an old-format checkpoint
    }

    [Fact]
    public void A_new_run_under_the_unset_rule_records_PreviousStep_and_resumes_exactly()
    {
        using var folder = new CheckpointFolder();
        var straight = Train(null, folder.File("straight.ckpt"));
        Assert.Equal("1", RunParts(folder.File("straight.ckpt"))[ClippingPart]);   // TableGradientClipping.PreviousStep = 1

        string path = folder.File("run.ckpt");
        Interrupted(null, path);
        Assert.Equal("1", RunParts(path)[ClippingPart]);
        var log = new List<string>();
        AssertSameBytes(straight, Train(null, path, log: log));
        Assert.Equal(CheckpointFolder.Tensors(folder.File("straight.ckpt")), CheckpointFolder.Tensors(path));
        Assert.DoesNotContain(log, l => l.Contains("continues with", StringComparison.Ordinal));   // nothing to announce
    }

    [Fact]
    public void An_explicit_rule_other_than_the_checkpoints_is_refused_naming_the_option_both_rules_and_the_fix()
    {
        using var folder = new CheckpointFolder();
        string old = folder.File("old.ckpt");
        Interrupted(TableGradientClipping.Global, old);
        var e = Assert.Throws<InvalidOperationException>(() => Train(TableGradientClipping.PreviousStep, old));
        Assert.Contains("belongs to another training run", e.Message, StringComparison.Ordinal);
        Assert.Contains("TableGradientClipping differs (checkpoint: Global; this run: PreviousStep)", e.Message, StringComparison.Ordinal);
        Assert.Contains("Leave TableGradientClipping unset (null) or set it to Global", e.Message, StringComparison.Ordinal);
        Assert.Contains("Delete the file", e.Message, StringComparison.OrdinalIgnoreCase);

        string current = folder.File("new.ckpt");
        Interrupted(null, current);
        var global = Assert.Throws<InvalidOperationException>(() => Train(TableGradientClipping.Global, current));
        Assert.Contains("(checkpoint: PreviousStep; this run: Global)", global.Message, StringComparison.Ordinal);
        var none = Assert.Throws<InvalidOperationException>(() => Train(TableGradientClipping.None, current));
        Assert.Contains("(checkpoint: PreviousStep; this run: None)", none.Message, StringComparison.Ordinal);
        Assert.Equal(3, CheckpointFolder.StepOf(current));                   // a refused run leaves the checkpoint alone
    }

    [Fact]
    public void Without_the_fused_kernels_the_unset_rule_applies_the_previous_factor_in_the_separate_update() =>
        // The reference kernels (as on CUDA) cannot update the tables inside the backward: the optimizer applies the previous
        // step's factor in its own pass instead, so the unset rule still trains exactly like an explicit PreviousStep.
        KernelSettings.Current.With(k => k.UseFusedKernels = false, () =>
        {
            var unset = Train(null);
            AssertSameBytes(Train(TableGradientClipping.PreviousStep), unset);
            Assert.NotEqual(Train(TableGradientClipping.Global).Losses[^1], unset.Losses[^1]);
        });

    [Fact]
    public void Without_gradient_clipping_the_unset_rule_trains_exactly_like_Global() =>
        AssertSameBytes(Train(TableGradientClipping.Global, clip: 0), Train(null, clip: 0));

    [Fact]
    public void The_text_classifier_and_the_tabular_trainer_train_with_PreviousStep_when_the_rule_is_unset()
    {
        using var folder = new CheckpointFolder();
        var ml = new MLContext(seed: 1);

        var text = ClassificationRows.Options(epochs: 2);
        Assert.Null(text.TableGradientClipping);
        text.CheckpointPath = folder.File("text.ckpt");
        using (var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(text)
            .Fit(ml.Data.LoadFromEnumerable(ClassificationRows.Binary())))
            Assert.All(model.TrainingResult!.LossHistory, l => Assert.True(double.IsFinite(l)));
        Assert.Equal("1", RunParts(folder.File("text.ckpt"))[ClippingPart]);

        var tabular = TabularRows.TinyOptions(epochs: 2);
        Assert.Null(tabular.TableGradientClipping);
        tabular.CheckpointPath = folder.File("tabular.ckpt");
        using (var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(tabular).Fit(ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(64, 3))))
            Assert.All(model.TrainingResult!.LossHistory, l => Assert.True(double.IsFinite(l)));
        Assert.Equal("1", RunParts(folder.File("tabular.ckpt"))[ClippingPart]);
    }

    [Fact]
    public void Unset_moments_train_like_explicit_bf16_moments_and_unlike_fp32()
    {
        var unset = Train(null);
        AssertSameBytes(Train(null, moments: MomentPrecision.BFloat16), unset);
        Assert.NotEqual(Train(null, moments: MomentPrecision.Float32).Losses[^1], unset.Losses[^1]);
        Assert.Equal(MomentPrecision.BFloat16, TrainingOptions.DefaultTableMomentPrecision);
    }

    [Fact]
    public void Unset_moments_are_fp32_where_the_tables_do_not_take_the_managed_kernels()
    {
        // torch's update (CUDA, fused kernels off) rounds bf16 moments to nearest, which can freeze a slow moment: fp32 there.
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { Width = 64, Heads = 2, BitsPerChunk = 8, Layers = 1, ContextLength = 32 });
        Assert.Equal(MomentPrecision.BFloat16, ModelOptimizer.DefaultMoments(model));
        KernelSettings.Current.With(k => k.UseFusedKernels = false, () =>
        {
            Assert.Equal(MomentPrecision.Float32, ModelOptimizer.DefaultMoments(model));
            using var optimizer = new ModelOptimizer(model, new TrainingOptions());
            Assert.Equal(MomentPrecision.Float32, optimizer.TableMoments);
        });
        using (var optimizer = new ModelOptimizer(model, new TrainingOptions()))
            Assert.Equal(MomentPrecision.BFloat16, optimizer.TableMoments);
        using (var optimizer = new ModelOptimizer(model, new TrainingOptions { TableMomentPrecision = MomentPrecision.Float32 }))
            Assert.Equal(MomentPrecision.Float32, optimizer.TableMoments);
    }

    [Fact]
    public void A_checkpoint_written_while_fp32_moments_were_the_default_resumes_under_unset_moments_and_repeats_the_fp32_run()
    {
        using var folder = new CheckpointFolder();
        var straight = Train(null, folder.File("straight.ckpt"), moments: MomentPrecision.Float32);

        // Float32 is left out of run.json, exactly as every checkpoint was written while it was the default.
        string path = folder.File("old.ckpt");
        Interrupted(null, path, MomentPrecision.Float32);
        Assert.DoesNotContain(MomentsPart, RunParts(path).Keys);

        var log = new List<string>();
        AssertSameBytes(straight, Train(null, path, log: log));
        Assert.Equal(CheckpointFolder.Tensors(folder.File("straight.ckpt")), CheckpointFolder.Tensors(path));
        Assert.Contains(log, l => l.Contains("TableMomentPrecision Float32", StringComparison.Ordinal)
            && l.Contains("continues with Float32", StringComparison.Ordinal));
        Assert.DoesNotContain(MomentsPart, RunParts(path).Keys);            // still an old-format checkpoint
    }

    [Fact]
    public void A_new_run_under_unset_moments_records_bf16_and_resumes_exactly()
    {
        using var folder = new CheckpointFolder();
        var straight = Train(null, folder.File("straight.ckpt"));
        Assert.Equal("1", RunParts(folder.File("straight.ckpt"))[MomentsPart]);   // MomentPrecision.BFloat16 = 1

        string path = folder.File("run.ckpt");
        Interrupted(null, path);
        var log = new List<string>();
        AssertSameBytes(straight, Train(null, path, log: log));
        Assert.DoesNotContain(log, l => l.Contains("continues with", StringComparison.Ordinal));   // nothing to announce
    }

    [Fact]
    public void Explicit_moments_other_than_the_checkpoints_are_refused_naming_the_option_both_precisions_and_the_fix()
    {
        using var folder = new CheckpointFolder();
        string old = folder.File("old.ckpt");
        Interrupted(null, old, MomentPrecision.Float32);
        var e = Assert.Throws<InvalidOperationException>(() => Train(null, old, moments: MomentPrecision.BFloat16));
        Assert.Contains("belongs to another training run", e.Message, StringComparison.Ordinal);
        Assert.Contains("TableMomentPrecision differs (checkpoint: Float32; this run: BFloat16)", e.Message, StringComparison.Ordinal);
        Assert.Contains("Leave TableMomentPrecision unset (null) or set it to Float32", e.Message, StringComparison.Ordinal);

        string current = folder.File("new.ckpt");
        Interrupted(null, current);
        var fp32 = Assert.Throws<InvalidOperationException>(() => Train(null, current, moments: MomentPrecision.Float32));
        Assert.Contains("(checkpoint: BFloat16; this run: Float32)", fp32.Message, StringComparison.Ordinal);
        Assert.Equal(3, CheckpointFolder.StepOf(current));                   // a refused run leaves the checkpoint alone
    }
}
