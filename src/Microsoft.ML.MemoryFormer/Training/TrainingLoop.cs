using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>The outcome of a training run.</summary>
/// <param name="Steps">Steps completed.</param>
/// <param name="FinalLoss">Training loss of the last step.</param>
/// <param name="BestValidationLoss">Best validation loss seen, if validation ran.</param>
/// <param name="BestValidationMetric">Metric at the best validation, if the task has one.</param>
/// <param name="StoppedEarly">Whether early stopping ended the run.</param>
/// <param name="Elapsed">Wall time.</param>
/// <param name="LossHistory">Training loss of every step.</param>
public sealed record TrainingResult(int Steps, double FinalLoss, double? BestValidationLoss, double? BestValidationMetric,
    bool StoppedEarly, TimeSpan Elapsed, IReadOnlyList<double> LossHistory);

/// <summary>
/// The one training loop of the library, for every task: the task supplies a loss per step and a validation pass;
/// the loop owns the optimiser, schedule, clipping, progress, cancellation, early stopping and checkpoints. Reads top
/// to bottom, one dispose scope per step.
/// </summary>
/// <remarks>
/// Step s is a pure function of the state after step s − 1 and of (seed, s): the learning rate comes from the step,
/// the task draws its batch from the step, and torch's generator (dropout) is reseeded from (seed, s) and held from the
/// reseed through the forward (<see cref="GeneratorLease"/>), so another training in the process cannot draw in between.
/// So a run resumed from a checkpoint (<see cref="TrainingOptions.CheckpointPath"/>) repeats the uninterrupted run bit for
/// bit, and so does a run beside another training.
/// Cancellation is checked before each step (and by tasks before they compute anything), never inside one, so a
/// cancelled run stops within one step and its last checkpoint holds its last completed step.
/// </remarks>
internal static class TrainingLoop
{
    public static TrainingResult Run(nn.Module model, ITrainingTask task, TrainingOptions options,
        IProgress<TrainingProgress>? progress = null, Action<string>? log = null, CancellationToken cancellation = default,
        Func<RunFingerprint>? describeRun = null)
    {
        options.Validate();
        TorchRuntime.EnsureAvailable();
        using var checkpoint = options.CheckpointPath is null ? null : new TrainingCheckpoint(model, options, describeRun?.Invoke(), log);
        options = checkpoint?.Options ?? options;                            // an unset clipping rule: the checkpoint's
        using var optimizer = new ModelOptimizer(model, options);
        using var average = options.WeightAveragingDecay is { } decay ? new WeightAverage(model, decay) : null;
        using var state = checkpoint?.TryResume(model, optimizer, average) ?? new TrainingState();
        if (checkpoint is not null && state.Step > 0)
            log?.Invoke($"resumed from step {state.Step} of {options.MaxSteps} ({options.CheckpointPath})");
        using var buckets = log is null ? null : BucketUsageRecorder.TryAttachForTraining(model);   // bucket health per report
        var clock = Stopwatch.StartNew();
        TimeSpan Elapsed() => state.EarlierElapsed + clock.Elapsed;
        model.train();
        try
        {
            while (state.Step < options.MaxSteps && !state.StoppedEarly)
            {
                cancellation.ThrowIfCancellationRequested();
                Step(model, task, optimizer, average, options, state);
                if (state.Step < options.MaxSteps && checkpoint?.IsDue(state.Step) == true)
                    checkpoint.Save(model, optimizer, state, Elapsed(), average);
                if (state.Step % options.ReportEvery == 0 || state.Step == options.MaxSteps
                    || (options.ValidateEvery > 0 && state.Step % options.ValidateEvery == 0))
                    Report(state, options, optimizer.LearningRateAt(state.Step - 1), Elapsed(), progress, log, buckets);
            }
        }
        catch (OperationCanceledException) when (checkpoint is not null && state.Step > 0 && checkpoint.SavedStep != state.Step)
        {
            checkpoint.Save(model, optimizer, state, Elapsed(), average);
            log?.Invoke($"cancelled after step {state.Step}; checkpoint written to {options.CheckpointPath}");
            throw;
        }
        if (checkpoint is not null && checkpoint.SavedStep != state.Step)
            checkpoint.Save(model, optimizer, state, Elapsed(), average);
        if (state.StoppedEarly && state.Best is { } kept)
            log?.Invoke($"early stopping after step {state.Step}: {options.EarlyStoppingPatience} validations in a row raised no metric " +
                $"and lowered no loss; the model keeps the weights of the best validation ({(kept.Metric is { } m ? $"metric {m:F4}, " : "")}loss {kept.Loss:F4})");
        if (state.BestWeights is { } best) Restore(model, best);            // averaged weights when averaging is on
        else average?.CopyInto();
        model.eval();
        return new TrainingResult(state.Step, state.Losses.Count > 0 ? state.Losses[^1] : double.NaN, state.Best?.Loss,
            state.Best?.Metric, state.StoppedEarly, Elapsed(), state.Losses.ToArray());
    }

    /// <summary>Runs step <c>state.Step</c>: loss, backward, clipped AdamW update, the weight average's update, then
    /// validation and early stopping when due (of the averaged weights when averaging is on).</summary>
    private static void Step(nn.Module model, ITrainingTask task, ModelOptimizer optimizer, WeightAverage? average,
        TrainingOptions options, TrainingState state)
    {
        int step = state.Step;
        using (var scope = NewDisposeScope())
        {
            optimizer.ZeroGrad(step);
            using var guard = BackwardGuard.Open();                       // this step's backward failures, not another thread's
            Tensor loss;
            long count;
            using (GeneratorLease.Seeded(StepSeed.Of(options.Seed, step)))   // dropout's masks, drawn in the forward: this run's alone
                (loss, count) = task.Loss(step);
            guard.Backward(loss);
            optimizer.Step(step);
            average?.Update(step);
            double value = loss.item<float>();
            if (!double.IsFinite(value))
                throw new InvalidOperationException($"The training loss became {value} at step {step + 1}. Lower the " +
                    "learning rates (LearningRate, TableLearningRate) or enable gradient clipping.");
            state.Losses.Add(value);
            state.Items += count;
        }
        bool last = step + 1 == options.MaxSteps;
        bool validateNow = last || (options.ValidateEvery > 0 && (step + 1) % options.ValidateEvery == 0);
        if (validateNow)
        {
            average?.Swap();                                             // the model holds the averaged weights ...
            try { Validated(model, task, options, state); }
            finally { average?.Swap(); }                                 // ... and its trained ones again
        }
        else state.LastValidation = null;
        state.Step = step + 1;
    }

    /// <summary>Validates the model's current weights and keeps early stopping's books (a copy of the best weights).</summary>
    private static void Validated(nn.Module model, ITrainingTask task, TrainingOptions options, TrainingState state)
    {
        var validation = Validate(model, task);
        state.LastValidation = validation;
        if (validation is not { } v) return;                              // the task has no validation data
        bool lowerLoss = state.LowestLoss is not { } lowest || v.Loss < lowest;
        if (lowerLoss) state.LowestLoss = v.Loss;
        if (state.Best is null || IsBetter(v, state.Best.Value))
        {
            state.Best = v;
            state.SinceBest = 0;
            if (options.EarlyStoppingPatience > 0) state.SetBestWeights(Snapshot(model));
        }
        else if (lowerLoss) state.SinceBest = 0;                        // still learning: the loss fell though the metric did not rise
        else if (options.EarlyStoppingPatience > 0 && ++state.SinceBest >= options.EarlyStoppingPatience)
        {
            state.StoppedEarly = true;
        }
    }

    private static (double Loss, double? Metric)? Validate(nn.Module model, ITrainingTask task)
    {
        model.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            return task.Validate();
        }
        finally { model.train(); }
    }

    /// <summary>A higher metric wins; on a tie (e.g. accuracy saturated at 100% on a small set) the lower loss wins.</summary>
    private static bool IsBetter((double Loss, double? Metric) candidate, (double Loss, double? Metric) best) =>
        candidate.Metric is { } m && best.Metric is { } b && m != b ? m > b : candidate.Loss < best.Loss;

    private static Dictionary<string, Tensor> Snapshot(nn.Module model)
    {
        using var noGrad = no_grad();
        return model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
    }

    private static void Restore(nn.Module model, Dictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        foreach (var (name, tensor) in model.state_dict()) tensor.copy_(weights[name]);
    }

    private static void Report(TrainingState state, TrainingOptions options, double lr, TimeSpan elapsed,
        IProgress<TrainingProgress>? progress, Action<string>? log, BucketUsageRecorder? buckets)
    {
        int step = state.Step;
        double loss = state.Losses[^1];
        var validation = state.LastValidation;
        double perSecond = state.Items / Math.Max(elapsed.TotalSeconds, 1e-9);
        var remaining = TimeSpan.FromSeconds(elapsed.TotalSeconds / step * (options.MaxSteps - step));
        var report = new TrainingProgress(step, options.MaxSteps, loss, lr, perSecond, elapsed, remaining,
            validation?.Loss, validation?.Metric);
        progress?.Report(report);
        log?.Invoke($"step {step}/{options.MaxSteps} loss {loss:F4} lr {lr:G3} {perSecond:F0} items/s" +
            (validation is { } v ? $" validation loss {v.Loss:F4}" + (v.Metric is { } m ? $" metric {m:F4}" : "") : "") +
            $" ETA {remaining:hh\\:mm\\:ss}" + (buckets is null ? "" : BucketUsageRecorder.Summarise(buckets.Snapshot())));
        buckets?.Reset();                                                // each line covers the steps since the last one
    }
}
