using Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Tests.Benchmarks;

/// <summary>Training seconds with the learning curve's validation passes taken out (<c>bench lm-tokens --eval-every</c>,
/// linked from the benchmark program).</summary>
public class TrainingClockTests
{
    private static TrainingProgress Report(int step, double seconds, double? validationLoss = null) =>
        new(step, 40, 1.0, 1e-3, 0, TimeSpan.FromSeconds(seconds), TimeSpan.Zero, validationLoss);

    [Fact]
    public void Without_validations_the_training_seconds_are_the_loop_clock()
    {
        var seconds = TrainingClock.TrainingSeconds([Report(10, 2.5), Report(20, 4.5), Report(25, 5.5)]);

        Assert.Equal([2.5, 4.5, 5.5], seconds);
    }

    [Fact]
    public void A_validation_pass_is_charged_only_for_its_steps_at_the_previous_intervals_rate()
    {
        // 0.2 s a step; the reports at steps 20 and 40 follow a validation pass of 7 s and 3 s
        var reports = new[] { Report(10, 2.0), Report(20, 11.0, 5.1), Report(30, 13.0), Report(40, 18.0, 4.9) };

        var seconds = TrainingClock.TrainingSeconds(reports);

        Assert.Equal(2.0, seconds[0], 12);
        Assert.Equal(4.0, seconds[1], 12);
        Assert.Equal(6.0, seconds[2], 12);
        Assert.Equal(8.0, seconds[3], 12);
    }

    [Fact]
    public void A_first_interval_with_a_validation_takes_the_rate_of_the_next_one()
    {
        var seconds = TrainingClock.TrainingSeconds([Report(10, 9.0, 5.0), Report(20, 12.0)]);

        Assert.Equal(3.0, seconds[0], 12);
        Assert.Equal(6.0, seconds[1], 12);
    }

    [Fact]
    public void An_estimate_never_exceeds_the_measured_interval_and_only_validations_leave_the_full_clock()
    {
        // the validation interval (1 s for 10 steps) ran faster than the 0.5 s/step before it: all of it counts
        var faster = TrainingClock.TrainingSeconds([Report(10, 5.0), Report(20, 6.0, 5.0)]);
        var onlyValidations = TrainingClock.TrainingSeconds([Report(10, 4.0, 5.0), Report(20, 9.0, 4.0)]);

        Assert.Equal([5.0, 6.0], faster);
        Assert.Equal([4.0, 9.0], onlyValidations);
    }

    [Fact]
    public void A_clock_that_ran_before_the_first_step_has_its_setup_taken_out_of_the_first_interval()
    {
        // CPU seconds: 6 s of tokenising before step 0, then 0.3 s a step; a 4 s validation before the mark at step 30
        TrainingClock.Mark[] marks = [new(10, 9.0, false), new(20, 12.0, false), new(30, 19.0, true)];

        var withSetup = TrainingClock.TrainingSeconds(marks, setupInFirstInterval: true);
        var fromZero = TrainingClock.TrainingSeconds(marks, setupInFirstInterval: false);

        Assert.Equal(3.0, withSetup[0], 12);
        Assert.Equal(6.0, withSetup[1], 12);
        Assert.Equal(9.0, withSetup[2], 12);
        Assert.Equal(9.0, fromZero[0], 12);
    }
}
