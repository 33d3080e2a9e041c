using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Runtime;

/// <summary>The training's choice of where the kernels fork (<see cref="ForkTuner"/>): its schedule of probe steps and the
/// policy it keeps from their times.</summary>
public class ForkTunerTests
{
    private const int Cycle = ForkTuner.ProbeSteps + ForkTuner.ExploitSteps;

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
    public void The_first_steps_take_the_pool_then_a_probe_alternates_a_b_b_a()
    {
        var tuner = new ForkTuner();
        for (int i = 0; i < ForkTuner.SkipSteps; i++)
            Assert.Equal((false, false), tuner.Plan(i));
        var probe = Enumerable.Range(ForkTuner.SkipSteps, ForkTuner.ProbeSteps).Select(i => tuner.Plan(i)).ToArray();
        Assert.All(probe, p => Assert.True(p.Probe));
        Assert.Equal([true, false, false, true, true, false, false, true], probe.Select(p => p.Team));
        Assert.False(tuner.Plan(ForkTuner.SkipSteps + ForkTuner.ProbeSteps).Probe);
        Assert.True(tuner.Plan(ForkTuner.SkipSteps + Cycle).Probe);                // the next probe
    }

    [Fact]
    public void It_keeps_the_faster_policy_and_follows_a_machine_that_changes()
    {
        var tuner = new ForkTuner();
        int firstExploit = ForkTuner.SkipSteps + ForkTuner.ProbeSteps, secondExploit = firstExploit + Cycle;
        // Idle: the team is faster; then, from the second probe on, the machine is busy and the pool is faster.
        var policies = Run(tuner, secondExploit + 5, i => i < firstExploit + ForkTuner.ExploitSteps ? 130 : 320, _ => 140);
        Assert.All(policies[firstExploit..(firstExploit + ForkTuner.ExploitSteps)], Assert.True);
        Assert.All(policies[secondExploit..], Assert.False);
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
    public void The_default_chooses_by_timing()
    {
        Assert.Equal(KernelForkPolicy.Auto, new KernelSettings().KernelForks);
        Assert.False(new ForkTuner().Chosen);                                    // the thread pool until a probe says otherwise
    }
}
