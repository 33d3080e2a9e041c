using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Soak;

/// <summary>
/// A long language-model training run (Small256, byte level) that samples loss, tokens/s and process memory every
/// minute, checkpoints periodically, is cancelled at the deadline (checkpointing its last step) and ends with a
/// checkpoint/resume cycle: the last periodic checkpoint is resumed up to the cancelled step, and its losses and final
/// state must match the timed run's bit for bit.
/// </summary>
internal sealed class SoakBenchmark(string dataPath, string folder, TimeSpan duration, TimeSpan checkpointInterval)
{
    private const int Seed = 1, BatchSize = 16, ContextLength = 128;

    private sealed record Row(string Text);

    public (IReadOnlyList<SoakSample> Samples, SoakCycle Cycle) Run(Action<SoakSample> onSample)
    {
        var ml = new MLContext(Seed);
        var data = ml.Data.LoadFromEnumerable(new[] { new Row(File.ReadAllText(dataPath)) });
        string checkpoint = Path.Combine(folder, "soak.ckpt"), periodic = Path.Combine(folder, "soak-periodic.ckpt");
        foreach (var f in new[] { checkpoint, periodic }) File.Delete(f);

        var samples = new List<SoakSample>();
        var losses = new List<double>();
        int periodicStep = 0, lastSampleStep = 0;
        var lastWrite = DateTime.MinValue;
        var clock = Stopwatch.StartNew();
        var sampleClock = Stopwatch.StartNew();
        using var cancel = new CancellationTokenSource();
        var cancelClock = new Stopwatch();
        var options = Options(checkpoint, cancel.Token, p =>
        {
            losses.Add(p.Loss);
            if (p.Step == 1)
            {
                sampleClock.Restart();                // tokens/s from the first step, not from the text packing before it
                lastSampleStep = 1;
            }
            if (File.Exists(checkpoint) && File.GetLastWriteTimeUtc(checkpoint) != lastWrite)
            {
                // a periodic checkpoint was written before this report: keep a copy to resume the cycle from
                lastWrite = File.GetLastWriteTimeUtc(checkpoint);
                File.Copy(checkpoint, periodic, overwrite: true);
                periodicStep = p.Step;
            }
            if (sampleClock.Elapsed >= TimeSpan.FromMinutes(1) || clock.Elapsed >= duration)
            {
                var sample = Sample(clock.Elapsed, p, (p.Step - lastSampleStep) * (double)BatchSize * ContextLength / sampleClock.Elapsed.TotalSeconds);
                samples.Add(sample);
                onSample(sample);
                lastSampleStep = p.Step;
                sampleClock.Restart();
            }
            if (clock.Elapsed >= duration && !cancel.IsCancellationRequested)
            {
                cancelClock.Start();
                cancel.Cancel();
            }
        });
        try
        {
            using var model = ml.Text.MemoryFormer(options).Fit(data);
            throw new InvalidOperationException("The soak run ended before its deadline; raise MaxSteps.");
        }
        catch (OperationCanceledException)
        {
            cancelClock.Stop();
        }
        int cancelledAt = losses.Count;
        if (periodicStep == 0)
            throw new InvalidOperationException("No periodic checkpoint was written before the deadline; lower --checkpoint-minutes.");
        return (samples, Cycle(ml, data, checkpoint, periodic, periodicStep, cancelledAt, cancelClock.Elapsed, losses));
    }

    private SoakCycle Cycle(MLContext ml, IDataView data, string timed, string periodic, int from, int to, TimeSpan cancelTime,
        List<double> timedLosses)
    {
        var replayed = new List<double>();
        var resumeClock = Stopwatch.StartNew();
        double resumeSeconds = 0;
        using var cancel = new CancellationTokenSource();
        var options = Options(periodic, cancel.Token, p =>
        {
            if (replayed.Count == 0) resumeSeconds = resumeClock.Elapsed.TotalSeconds;
            replayed.Add(p.Loss);
            if (p.Step >= to) cancel.Cancel();
        });
        if (from == to) cancel.Cancel();             // the last periodic checkpoint is the cancelled step: nothing to replay
        try
        {
            using var model = ml.Text.MemoryFormer(options).Fit(data);
        }
        catch (OperationCanceledException)
        {
        }
        bool lossesIdentical = replayed.SequenceEqual(timedLosses.Skip(from).Take(to - from));
        ModelArchive timedState = ModelArchive.Load(timed), replayedState = ModelArchive.Load(periodic);
        bool stateIdentical = new[] { "weights.bin", "optimizer.bin" }.All(entry =>
            timedState.Get(entry).AsSpan().SequenceEqual(replayedState.Get(entry)));
        return new SoakCycle(to, cancelTime.TotalSeconds, from, resumeSeconds, lossesIdentical, stateIdentical, new FileInfo(timed).Length);
    }

    private MemoryFormerLanguageModelEstimator.Options Options(string checkpoint, CancellationToken cancel, Action<TrainingProgress> onStep) =>
        new()
        {
            Architecture = MemoryFormerConfig.Small256, ContextLength = ContextLength, BatchSize = BatchSize,
            MaxSteps = 10_000_000, WarmupSteps = 50, ValidationFraction = 0, ValidateEvery = 0, ReportEvery = 1, Seed = Seed,
            CheckpointPath = checkpoint, CheckpointInterval = checkpointInterval, CancellationToken = cancel,
            Progress = new StepRecorder(onStep),
        };

    private static SoakSample Sample(TimeSpan elapsed, TrainingProgress p, double tokensPerSecond)
    {
        using var process = Process.GetCurrentProcess();
        return new SoakSample(elapsed.TotalMinutes, p.Step, p.Loss, tokensPerSecond, process.WorkingSet64, process.PrivateMemorySize64,
            GC.GetTotalMemory(forceFullCollection: false));
    }

    /// <summary>Reports on the training thread, every step.</summary>
    private sealed class StepRecorder(Action<TrainingProgress> onStep) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => onStep(value);
    }
}
