using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Runtime;

/// <summary>The training's choice of where the kernels fork (<see cref="ForkTuner"/>): its schedule of probe steps and the
/// policy it keeps from their times.</summary>
public class ForkTunerTests
{
    /// <summary>The first step of every probe among the first <paramref name="steps"/>.</summary>
    private static int[] ProbeStarts(ForkTuner tuner, int steps) =>
        Enumerable.Range(0, steps).Where(i => tuner.Plan(i).Probe && (i == 0 || !tuner.Plan(i - 1).Probe)).ToArray();

    /// <summary>Runs <paramref name="steps"/> steps with the team's and the pool's step times given per step index; returns each step's policy.</summary>
    private static bool[] Run(ForkTuner tuner, int steps, Func<int, double> teamMs, Func<int, double> poolMs)
    {
        var policies = new bool[steps];
        for (int i = 0; i < steps; i++)
        {
            bool team = policies[i] = tuner.Plan(i).Team;
            tuner.Record(i, team, team ? teamMs(i) : poolMs(i));
        }
        return policies;
    }

    [Fact]
    public void The_first_steps_take_the_pool_then_probes_alternate_a_b_b_a_ever_less_often()
    {
        var tuner = new ForkTuner();
        for (int i = 0; i < ForkTuner.SkipSteps; i++)
            Assert.Equal((false, false, false), tuner.Plan(i));
        var probe = Enumerable.Range(ForkTuner.SkipSteps, ForkTuner.ProbeSteps).Select(i => tuner.Plan(i)).ToArray();
        Assert.All(probe, p => Assert.True(p.Probe));
        Assert.Equal([true, false, false, true, true, false, false, true], probe.Select(p => p.Team));
        Assert.Equal([false, false, false, false, false, false, false, true], probe.Select(p => p.Last));
        // Gaps of 8, 16, 32, 64 and 128 steps after the first probes, then 200.
        Assert.Equal([2, 18, 42, 82, 154, 290, 498, 706], ProbeStarts(tuner, 800));
    }

    [Fact]
    public void It_keeps_the_faster_policy_and_follows_a_machine_that_changes()
    {
        var tuner = new ForkTuner();
        // Idle until step 300: the team is faster; then the machine is busy and the pool is faster.
        var policies = Run(tuner, 720, i => i < 300 ? 130 : 320, _ => 140);
        Assert.All(policies[10..18], Assert.True);                               // after the first probe (steps 2-9)
        Assert.All(policies[298..498], Assert.True);                             // kept from the probe at 290, before the change
        Assert.All(policies[506..706], Assert.False);                            // the probe at 498 saw the busy machine
        Assert.False(tuner.Chosen);
    }

    [Fact]
    public void One_slow_step_in_a_probe_does_not_decide_it()
    {
        var tuner = new ForkTuner();
        int first = ForkTuner.SkipSteps;
        Run(tuner, first + ForkTuner.ProbeSteps, i => i == first ? 900 : 130, _ => 140);   // the team's first probe step stalls once
        Assert.True(tuner.Chosen);
    }

    [Fact]
    public void A_tuner_that_timed_steps_hands_the_pool_back_when_its_training_ends()
    {
        var tuner = new ForkTuner();
        for (int i = 0; i <= ForkTuner.SkipSteps; i++)                           // up to the probe's first step: the team
        {
            tuner.Begin();
            if (i < ForkTuner.SkipSteps) tuner.End();
        }
        if (OpenMPTeam.IsAvailable && KernelParallel.Workers > 1)                // else the tuner does not time (the pool throughout)
            Assert.True(ForkTuner.TeamChosen);
        tuner.Stop();
        Assert.False(ForkTuner.TeamChosen);
    }

    [Fact]
    public void The_default_chooses_by_timing()
    {
        Assert.Equal(KernelForkPolicy.Auto, new KernelSettings().KernelForks);
        Assert.False(new ForkTuner().Chosen);                                    // the thread pool until a probe says otherwise
    }
}
