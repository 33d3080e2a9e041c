using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>
/// Training seconds with the validation passes taken out, from a run's progress reports: the training loop's clock
/// (<see cref="TrainingProgress.Elapsed"/>) also runs while it validates, so a learning curve (<c>bench lm-tokens
/// --eval-every</c>) would otherwise charge its own evaluations to the model's equal-time budget. An interval between
/// two reports that ends in a validation (<see cref="TrainingProgress.ValidationLoss"/> set) is charged only for its
/// steps, at the per-step time of the nearest interval without one (the one before it, else the one after it).
/// The same rule serves a clock that also ran before the first step (the process's CPU time, which includes
/// tokenising): its first interval is then charged like a validation interval.
/// </summary>
internal static class TrainingClock
{
    /// <summary>A clock reading at a progress report: steps done, seconds on the clock, whether a validation preceded it.</summary>
    public readonly record struct Mark(int Step, double Seconds, bool Validated);

    /// <summary>Training seconds at each report (reports in step order, the first after step 0 at time 0).</summary>
    /// <returns>One value per report, non-decreasing; equal to <see cref="TrainingProgress.Elapsed"/> when no report follows a validation.</returns>
    public static double[] TrainingSeconds(IReadOnlyList<TrainingProgress> reports)
    {
        ArgumentNullException.ThrowIfNull(reports);
        return TrainingSeconds([.. reports.Select(r => new Mark(r.Step, r.Elapsed.TotalSeconds, r.ValidationLoss is not null))], setupInFirstInterval: false);
    }

    /// <summary>Training seconds at each mark of a clock that read 0 at step 0, or, with <paramref name="setupInFirstInterval"/>,
    /// at some time before it (the first interval's excess over its steps is then taken out too).</summary>
    public static double[] TrainingSeconds(IReadOnlyList<Mark> marks, bool setupInFirstInterval)
    {
        ArgumentNullException.ThrowIfNull(marks);
        var intervals = Intervals(marks);                                     // (seconds, steps) per mark
        var perStep = intervals.Select((v, i) => !marks[i].Validated && !(i == 0 && setupInFirstInterval) && v.Steps > 0
            ? v.Seconds / v.Steps : (double?)null).ToArray();
        var seconds = new double[marks.Count];
        double total = 0;
        for (int i = 0; i < marks.Count; i++)
        {
            var (interval, steps) = intervals[i];
            double? rate = perStep[i] ?? Nearest(perStep, i);
            total += rate is { } r ? Math.Min(interval, steps * r) : interval;  // nothing to estimate from: all of it
            seconds[i] = total;
        }
        return seconds;
    }

    /// <summary>Seconds and steps since the previous mark (or since step 0 at time 0), per mark.</summary>
    private static (double Seconds, int Steps)[] Intervals(IReadOnlyList<Mark> marks) =>
        [.. marks.Select((m, i) => i == 0 ? (m.Seconds, m.Step) : (m.Seconds - marks[i - 1].Seconds, m.Step - marks[i - 1].Step))];

    /// <summary>The per-step time of the nearest interval without a validation: before <paramref name="i"/>, else after it.</summary>
    private static double? Nearest(double?[] perStep, int i)
    {
        for (int j = i - 1; j >= 0; j--) if (perStep[j] is { } before) return before;
        for (int j = i + 1; j < perStep.Length; j++) if (perStep[j] is { } after) return after;
        return null;
    }
}
