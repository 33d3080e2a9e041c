using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>
/// How long a model's training takes for a number of steps, <c>startup + steps × per-step</c>, and so how many of its
/// steps fit in another model's measured training time: the rule behind the equal wall-clock rows of <c>bench lm</c>
/// and <c>bench lm-tokens</c>. The seconds are the training loop's own clock (<see cref="TrainingProgress.Elapsed"/>),
/// which starts at the first step, so tokenising the data and the closing evaluation are outside both budgets.
/// </summary>
/// <param name="StartupSeconds">Fixed cost of a run beyond its steps (the first steps' allocations and warm-up).</param>
/// <param name="SecondsPerStep">Steady-state seconds per training step.</param>
internal sealed record StepTiming(double StartupSeconds, double SecondsPerStep)
{
    /// <summary>The timing of a whole run, spread evenly over its steps (no startup term): the proportional rule
    /// <c>steps × budget / seconds</c> of <c>bench lm-tokens</c>, which retrains the faster model of an equal-steps pair.</summary>
    public static StepTiming FromRun(int steps, double seconds)
    {
        if (steps <= 0) throw new ArgumentOutOfRangeException(nameof(steps), steps, "A measured run needs at least one step.");
        if (!(seconds > 0) || !double.IsFinite(seconds))
            throw new ArgumentOutOfRangeException(nameof(seconds), seconds, "A measured run's training time must be a positive number of seconds.");
        return new StepTiming(0, seconds / steps);
    }

    /// <summary>
    /// The timing measured by a short calibration run from its progress reports: a line through the first report at or
    /// after step <paramref name="skipSteps"/> and the last report (reports that follow a validation pass are left
    /// out, since validation is not training). Its slope is the steady-state time per step; where it meets step 0 is
    /// the startup cost (never below 0: noise cannot make a run cheaper than its steps).
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than two training reports from step <paramref name="skipSteps"/> on.</exception>
    public static StepTiming FromProgress(IReadOnlyList<TrainingProgress> reports, int skipSteps)
    {
        ArgumentNullException.ThrowIfNull(reports);
        var points = reports.Where(r => r.ValidationLoss is null && r.Step >= skipSteps).ToList();
        if (points.Count < 2 || points[^1].Step <= points[0].Step)
            throw new ArgumentException($"The calibration run gave {points.Count} progress report(s) from step {skipSteps} on; the step time " +
                "needs two at different steps. Train the calibration run for more steps (at least two reporting intervals past the skipped ones).",
                nameof(reports));
        var (first, last) = (points[0], points[^1]);
        double perStep = (last.Elapsed - first.Elapsed).TotalSeconds / (last.Step - first.Step);
        if (!(perStep > 0))
            throw new ArgumentException($"The calibration run's clock did not advance between steps {first.Step} and {last.Step}.", nameof(reports));
        return new StepTiming(Math.Max(0, first.Elapsed.TotalSeconds - first.Step * perStep), perStep);
    }

    /// <summary>Seconds a run of <paramref name="steps"/> steps is expected to train.</summary>
    public double SecondsFor(int steps) => StartupSeconds + steps * SecondsPerStep;

    /// <summary>The number of steps whose expected training time is closest to <paramref name="budgetSeconds"/>.</summary>
    /// <exception cref="ArgumentException">The budget is not positive, or it does not cover the startup and one step.</exception>
    public int StepsThatFit(double budgetSeconds)
    {
        if (!(budgetSeconds > 0) || !double.IsFinite(budgetSeconds))
            throw new ArgumentOutOfRangeException(nameof(budgetSeconds), budgetSeconds, "The time budget must be a positive number of seconds.");
        double steps = Math.Round((budgetSeconds - StartupSeconds) / SecondsPerStep);
        if (steps < 1)
            throw new ArgumentException($"A budget of {budgetSeconds:F1} s does not cover this model's startup ({StartupSeconds:F1} s) and one " +
                $"step ({SecondsPerStep:F2} s): train the reference model for more steps.", nameof(budgetSeconds));
        return steps > int.MaxValue ? int.MaxValue : (int)steps;
    }
}
