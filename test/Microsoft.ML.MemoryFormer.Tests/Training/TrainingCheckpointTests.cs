using TorchSharp;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.LanguageModeling;
using Microsoft.ML.MemoryFormer.Tests.Reliability;
using Microsoft.ML.MemoryFormer.Training;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>Checkpoints of the one training loop through the language-model estimator: cancellation, resume, identity.</summary>
public class TrainingCheckpointTests
{
    /// <summary>16 steps of a Nano model with dropout, validation every 4 steps and a checkpoint every 5.</summary>
    private static MemoryFormerLanguageModelEstimator.Options Options(string? checkpoint, Action<TrainingProgress>? onStep = null,
        CancellationToken cancel = default)
    {
        var o = NanoOptions(steps: 16);
        o.Architecture = MemoryFormerConfig.Nano with { Dropout = 0.1 };
        o.Seed = 5;
        o.ReportEvery = 1;
        o.ValidateEvery = 4;
        o.CheckpointPath = checkpoint;
        o.CheckpointEverySteps = 5;
        o.CancellationToken = cancel;
        if (onStep is not null) o.Progress = new SynchronousProgress(onStep);
        return o;
    }

    private static TrainingResult Fit(MemoryFormerLanguageModelEstimator.Options options, List<string>? log = null)
    {
        var ml = new MLContext(seed: 1);
        if (log is not null) ml.Log += (_, e) => log.Add(e.Message);
        using var model = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus));
        return model.TrainingResult!;
    }

    [Fact]
    public void Cancelling_stops_within_a_step_leaves_a_complete_checkpoint_and_resumes_bit_identically()
    {
        using var folder = new CheckpointFolder();
        var expected = Fit(Options(folder.File("full.ckpt")));

        using var cancel = new CancellationTokenSource();
        int lastStep = 0;
        var cancelled = Options(folder.File("run.ckpt"), p => { lastStep = p.Step; if (p.Step == 7) cancel.Cancel(); }, cancel.Token);
        Assert.ThrowsAny<OperationCanceledException>(() => Fit(cancelled));
        Assert.Equal(7, lastStep);                                            // no step after the cancelling one
        Assert.Equal(7, CheckpointFolder.StepOf(folder.File("run.ckpt")));    // the last completed step, not step 5's
        Assert.Empty(folder.Others("full.ckpt", "run.ckpt"));                 // no temporary files

        var log = new List<string>();
        var resumed = Fit(Options(folder.File("run.ckpt")), log);
        Assert.Contains(log, l => l.Contains("resumed from step 7 of 16", StringComparison.Ordinal));
        Assert.Equal(expected.LossHistory, resumed.LossHistory);
        Assert.Equal(expected.BestValidationLoss, resumed.BestValidationLoss);
        Assert.Equal(CheckpointFolder.Tensors(folder.File("full.ckpt")), CheckpointFolder.Tensors(folder.File("run.ckpt")));

        // a finished run's checkpoint is kept: fitting again returns the same model without training
        var again = Fit(Options(folder.File("run.ckpt"), p => Assert.Fail($"trained step {p.Step} again")));
        Assert.Equal(expected.LossHistory, again.LossHistory);
    }

    [Fact]
    public void MLNet_cancellation_stops_the_language_model_before_the_next_step()
    {
        using var folder = new CheckpointFolder();
        var ml = new MLContext(seed: 1);
        int reported = 0;
        var options = Options(folder.File("run.ckpt"), p => { reported = p.Step; if (p.Step == 3) MLNetCancellation.Cancel(ml); });
        Assert.ThrowsAny<OperationCanceledException>(() => ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus)));
        Assert.Equal(3, reported);
        Assert.Equal(3, CheckpointFolder.StepOf(folder.File("run.ckpt")));
    }

    [Fact]
    public void A_checkpoint_of_another_run_is_refused_with_what_differs()
    {
        using var folder = new CheckpointFolder();
        string path = folder.File("run.ckpt");
        Fit(Change(Options(path), steps: 6));

        var longer = Assert.Throws<InvalidOperationException>(() => Fit(Change(Options(path), steps: 8)));
        Assert.Contains("MaxSteps differs (checkpoint: 6; this run: 8)", longer.Message, StringComparison.Ordinal);
        Assert.Contains("Delete the file", longer.Message, StringComparison.Ordinal);

        var reseeded = Assert.Throws<InvalidOperationException>(() => Fit(Change(Options(path), steps: 6, seed: 6)));
        Assert.Contains("Seed differs", reseeded.Message, StringComparison.Ordinal);

        var compact = Change(Options(path), steps: 6);
        compact.TableMomentPrecision = MomentPrecision.Float32;                  // other optimizer state (the default is bf16): not resumable
        var moments = Assert.Throws<InvalidOperationException>(() => Fit(compact));
        Assert.Contains("TableMomentPrecision differs", moments.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_moment_precision_is_left_out_of_the_run_identity_at_its_default()
    {
        // Checkpoints written before the option existed have no such part, and must still resume.
        Assert.DoesNotContain(nameof(TrainingOptions.TableMomentPrecision), System.Text.Json.JsonSerializer.Serialize(new TrainingOptions()));
        Assert.Contains(nameof(TrainingOptions.TableMomentPrecision),
            System.Text.Json.JsonSerializer.Serialize(new TrainingOptions { TableMomentPrecision = MomentPrecision.BFloat16 }));
    }

    [Fact]
    public void A_damaged_checkpoint_names_the_file_and_says_to_delete_it()
    {
        using var folder = new CheckpointFolder();
        string path = folder.File("run.ckpt");
        Fit(Change(Options(path), steps: 6));
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var error = Assert.Throws<InvalidDataException>(() => Fit(Change(Options(path), steps: 6)));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("Delete it", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_checkpoint_streams_the_tensors_to_and_from_the_file_without_a_managed_copy()
    {
        using var folder = new CheckpointFolder();
        var options = new TrainingOptions { MaxSteps = 4, CheckpointPath = folder.File("run.ckpt") };
        var config = MemoryFormerConfig.Nano with { Width = 128, Layers = 1, BitsPerChunk = 8 };
        torch.random.manual_seed(1);
        using var model = new MemoryFormer.Models.LanguageModel(config);
        using var optimizer = new ModelOptimizer(model, options);
        using var state = new TrainingState { Step = 1 };
        state.Losses.Add(4.0);

        long before = GC.GetAllocatedBytesForCurrentThread();
        using (var writer = new TrainingCheckpoint(model, options, null))
            writer.Save(model, optimizer, state, TimeSpan.Zero);
        long saving = GC.GetAllocatedBytesForCurrentThread() - before;

        torch.random.manual_seed(2);
        using var other = new MemoryFormer.Models.LanguageModel(config);
        using var otherOptimizer = new ModelOptimizer(other, options);
        using var reader = new TrainingCheckpoint(other, options, null);
        before = GC.GetAllocatedBytesForCurrentThread();
        using var resumed = reader.TryResume(other, otherOptimizer);
        long loading = GC.GetAllocatedBytesForCurrentThread() - before;

        long file = new FileInfo(options.CheckpointPath).Length;
        Assert.True(file > 24 << 20, $"the checkpoint is only {file} bytes; the test needs one large enough to see a copy");
        Assert.True(saving < file / 10, $"saving a {file}-byte checkpoint allocated {saving} managed bytes");
        Assert.True(loading < file / 10, $"resuming a {file}-byte checkpoint allocated {loading} managed bytes");
        Assert.Equal(1, resumed!.Step);
        Assert.All(model.parameters().Zip(other.parameters()), p => Assert.True(p.First.allclose(p.Second, rtol: 0, atol: 0)));
    }

    [Fact]
    public void A_checkpoint_in_use_by_a_running_fit_is_refused_until_that_run_ends()
    {
        using var folder = new CheckpointFolder();
        string path = folder.File("run.ckpt");
        Exception? second = null;
        var options = Change(Options(path, p =>
        {
            if (p.Step == 2)                                         // while the first run trains, a second one starts
                second = Record.Exception(() => Fit(Change(Options(path), steps: 6)));
        }), steps: 6);

        Fit(options);

        var refused = Assert.IsType<InvalidOperationException>(second);
        Assert.Contains(path, refused.Message, StringComparison.Ordinal);
        Assert.Contains("in use by another training run", refused.Message, StringComparison.Ordinal);
        Assert.Equal(6, CheckpointFolder.StepOf(path));              // the first run finished and saved
        Assert.Empty(folder.Others("run.ckpt"));                     // and released its lock file
        Fit(Change(Options(path), steps: 6));                        // which a later run can take
    }

    private static MemoryFormerLanguageModelEstimator.Options Change(MemoryFormerLanguageModelEstimator.Options o, int steps, int seed = 5)
    {
        o.MaxSteps = steps;
        o.Seed = seed;
        return o;
    }
}
