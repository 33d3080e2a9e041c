using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>
/// Training seconds with the validation passes taken out, from a run's progress reports: the training loop's clock
/// (<see cref="TrainingProgress.Elapsed"/>) also runs while it validates, so a learning curve (<c>bench lm-tokens
/// --eval-every</c>) would otherwise charge its own evaluations to the model's equal-time budget. An interval between
/// two reports that ends in a validation (<see cref="TrainingProgress.ValidationLoss"/> set) is charged only for its
/// steps, at the per-step time of the nearest interval without one (the one before it, else the one after it).
/// </summary>
internal static class TrainingClock
{
    /// <summary>Training seconds at each report (reports in step order, the first after step 0 at time 0).</summary>
    /// <returns>One value per report, non-decreasing; equal to <see cref="TrainingProgress.Elapsed"/> when no report follows a validation.</returns>
    public static double[] TrainingSeconds(IReadOnlyList<TrainingProgress> reports)
    {
        ArgumentNullException.ThrowIfNull(reports);
        var intervals = Intervals(reports);                                   // (seconds, steps) per report
        var perStep = intervals.Select((v, i) => reports[i].ValidationLoss is null && v.Steps > 0 ? v.Seconds / v.Steps : (double?)null).ToArray();
        var seconds = new double[reports.Count];
        double total = 0;
        for (int i = 0; i < reports.Count; i++)
        {
            var (interval, steps) = intervals[i];
            double? rate = perStep[i] ?? Nearest(perStep, i);
            total += rate is { } r ? Math.Min(interval, steps * r) : interval;  // nothing to estimate from: all of it
            seconds[i] = total;
        }
        return seconds;
    }

    /// <summary>Seconds and steps since the previous report (or since step 0 at time 0), per report.</summary>
    private static (double Seconds, int Steps)[] Intervals(IReadOnlyList<TrainingProgress> reports) =>
        [.. reports.Select((r, i) => i == 0 ? (r.Elapsed.TotalSeconds, r.Step)
            : ((r.Elapsed - reports[i - 1].Elapsed).TotalSeconds, r.Step - reports[i - 1].Step))];

    /// <summary>The per-step time of the nearest interval without a validation: before <paramref name="i"/>, else after it.</summary>
    private static double? Nearest(double?[] perStep, int i)
    {
        for (int j = i - 1; j >= 0; j--) if (perStep[j] is { } before) return before;
        for (int j = i + 1; j < perStep.Length; j++) if (perStep[j] is { } after) return after;
        return null;
    }
}
