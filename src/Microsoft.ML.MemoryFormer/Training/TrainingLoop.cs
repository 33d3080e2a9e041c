using System.Diagnostics;
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
/// the loop owns the optimiser, schedule, clipping, progress, cancellation and early stopping. Reads top to bottom,
/// one dispose scope per step.
/// </summary>
internal static class TrainingLoop
{
    public static TrainingResult Run(nn.Module model, ITrainingTask task, TrainingOptions options,
        IProgress<TrainingProgress>? progress = null, Action<string>? log = null, CancellationToken cancellation = default)
    {
        options.Validate();
        TorchRuntime.EnsureAvailable();
        using var optimizer = new ModelOptimizer(model, options);
        var clock = Stopwatch.StartNew();
        var losses = new List<double>(options.MaxSteps);
        long items = 0;
        (double Loss, double? Metric)? best = null;
        Dictionary<string, Tensor>? bestWeights = null;
        int sinceBest = 0, step = 0;
        bool stoppedEarly = false;
        model.train();
        for (; step < options.MaxSteps && !stoppedEarly; step++)
        {
            cancellation.ThrowIfCancellationRequested();
            using (var scope = NewDisposeScope())
            {
                optimizer.ZeroGrad();
                var (loss, count) = task.Loss(step);
                loss.backward();
                optimizer.Step(step);
                double value = loss.item<float>();
                if (!double.IsFinite(value))
                    throw new InvalidOperationException($"The training loss became {value} at step {step + 1}. Lower the " +
                        "learning rates (LearningRate, TableLearningRate) or enable gradient clipping.");
                losses.Add(value);
                items += count;
            }
            bool last = step + 1 == options.MaxSteps;
            bool validateNow = last || (options.ValidateEvery > 0 && (step + 1) % options.ValidateEvery == 0);
            (double Loss, double? Metric)? validation = validateNow ? Validate(model, task) : null;
            if (validation is { } v && (best is null || IsBetter(v, best.Value)))
            {
                best = v;
                sinceBest = 0;
                if (options.EarlyStoppingPatience > 0) bestWeights = Snapshot(model, bestWeights);
            }
            else if (validation is not null && options.EarlyStoppingPatience > 0 && ++sinceBest >= options.EarlyStoppingPatience)
            {
                stoppedEarly = true;
            }
            if (validateNow || last || (step + 1) % options.ReportEvery == 0)
                Report(step + 1, options, losses[^1], optimizer.LearningRateAt(step), items, clock.Elapsed, validation, progress, log);
        }
        if (bestWeights is not null)
        {
            Restore(model, bestWeights);
            foreach (var t in bestWeights.Values) t.Dispose();
        }
        model.eval();
        return new TrainingResult(step, losses.Count > 0 ? losses[^1] : double.NaN, best?.Loss, best?.Metric, stoppedEarly,
            clock.Elapsed, losses);
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

    private static Dictionary<string, Tensor> Snapshot(nn.Module model, Dictionary<string, Tensor>? previous)
    {
        if (previous is not null) foreach (var t in previous.Values) t.Dispose();
        using var noGrad = no_grad();
        return model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
    }

    private static void Restore(nn.Module model, Dictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        foreach (var (name, tensor) in model.state_dict()) tensor.copy_(weights[name]);
    }

    private static void Report(int step, TrainingOptions options, double loss, double lr, long items, TimeSpan elapsed,
        (double Loss, double? Metric)? validation, IProgress<TrainingProgress>? progress, Action<string>? log)
    {
        double perSecond = items / Math.Max(elapsed.TotalSeconds, 1e-9);
        var remaining = TimeSpan.FromSeconds(elapsed.TotalSeconds / step * (options.MaxSteps - step));
        var report = new TrainingProgress(step, options.MaxSteps, loss, lr, perSecond, elapsed, remaining,
            validation?.Loss, validation?.Metric);
        progress?.Report(report);
        log?.Invoke($"step {step}/{options.MaxSteps} loss {loss:F4} lr {lr:G3} {perSecond:F0} items/s" +
            (validation is { } v ? $" validation loss {v.Loss:F4}" + (v.Metric is { } m ? $" metric {m:F4}" : "") : "") +
            $" ETA {remaining:hh\\:mm\\:ss}");
    }
}
