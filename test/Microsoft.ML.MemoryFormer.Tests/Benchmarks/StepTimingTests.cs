using Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Tests.Benchmarks;

/// <summary>The equal wall-clock rule of <c>bench lm --equal-time</c> and <c>bench lm-tokens</c> (linked from the benchmark program).</summary>
public class StepTimingTests
{
    private static TrainingProgress Report(int step, double seconds, double? validationLoss = null) =>
        new(step, 100, 1.0, 1e-3, 0, TimeSpan.FromSeconds(seconds), TimeSpan.Zero, validationLoss);

    [Fact]
    public void A_calibration_run_gives_the_line_through_its_reports_after_the_skipped_warm_up()
    {
        // 1 s of startup and 0.2 s a step from step 10 on; the first steps were slower and are left out.
        var reports = new[] { Report(5, 2.5), Report(10, 3.0), Report(20, 5.0), Report(30, 7.0), Report(40, 9.0) };

        var timing = StepTiming.FromProgress(reports, skipSteps: 10);

        Assert.Equal(0.2, timing.SecondsPerStep, 12);
        Assert.Equal(1.0, timing.StartupSeconds, 12);
        Assert.Equal(21.0, timing.SecondsFor(100), 12);
    }

    [Fact]
    public void Reports_that_follow_a_validation_pass_are_not_training_time()
    {
        var reports = new[] { Report(10, 3.0), Report(20, 5.0), Report(30, 60.0, validationLoss: 1.5) };

        var timing = StepTiming.FromProgress(reports, skipSteps: 10);

        Assert.Equal(0.2, timing.SecondsPerStep, 12);
    }

    [Fact]
    public void Noise_cannot_make_the_startup_negative()
    {
        var timing = StepTiming.FromProgress([Report(10, 1.0), Report(20, 3.0)], skipSteps: 10);

        Assert.Equal(0.2, timing.SecondsPerStep, 12);
        Assert.Equal(0.0, timing.StartupSeconds);
    }

    [Fact]
    public void The_steps_that_fit_leave_the_startup_out_of_the_budget()
    {
        var timing = new StepTiming(StartupSeconds: 1.0, SecondsPerStep: 0.2);

        Assert.Equal(100, timing.StepsThatFit(21.0));
        Assert.Equal(2395, timing.StepsThatFit(480.0));   // 479 s / 0.2 s
        Assert.Equal(1, timing.StepsThatFit(1.15));
    }

    [Theory]
    [InlineData(120, 123.0, 248.0)]
    [InlineData(120, 123.0, 123.0)]
    [InlineData(1500, 341.3, 480.0)]
    [InlineData(7, 3.0, 2.0)]
    public void A_whole_run_gives_the_proportional_rule_of_the_token_level_command(int steps, double seconds, double budget)
    {
        Assert.Equal((int)Math.Round(steps * budget / seconds), StepTiming.FromRun(steps, seconds).StepsThatFit(budget));
    }

    [Fact]
    public void Too_few_calibration_reports_say_to_train_the_calibration_run_longer()
    {
        var error = Assert.Throws<ArgumentException>(() => StepTiming.FromProgress([Report(10, 3.0), Report(20, 5.0)], skipSteps: 20));

        Assert.Contains("calibration run", error.Message, StringComparison.Ordinal);
        Assert.Contains("1 progress report(s) from step 20", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_budget_shorter_than_the_startup_and_one_step_is_refused_with_both_figures()
    {
        var timing = new StepTiming(StartupSeconds: 5.0, SecondsPerStep: 0.5);

        var error = Assert.Throws<ArgumentException>(() => timing.StepsThatFit(5.2));

        Assert.Contains("5.0 s", error.Message, StringComparison.Ordinal);
        Assert.Contains("0.50 s", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void A_budget_that_is_not_a_positive_number_of_seconds_is_refused(double budget)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StepTiming(0, 0.2).StepsThatFit(budget));
    }

    [Fact]
    public void A_measured_run_needs_steps_and_time()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => StepTiming.FromRun(0, 10.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => StepTiming.FromRun(10, 0.0));
    }
}
