using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// Chooses for one training, while <see cref="KernelSettings.KernelForks"/> is <see cref="KernelForkPolicy.Auto"/>, whether
/// the managed kernels fork on libtorch's OpenMP team or on .NET's thread pool, by timing its own steps. After
/// <see cref="SkipSteps"/> steps (JIT, first allocations) it times <see cref="ProbeSteps"/> steps alternating team and pool
/// (A-B-B-A, so a drift of the machine weighs on both), keeps the one with the lower median for the next
/// <see cref="ExploitSteps"/> steps, then probes again, so a machine that gets busy or idle during a run is followed. Both
/// policies give the same bits, so the choice changes only time; the probes cost about one step in a hundred of the slower
/// policy's extra time.
/// </summary>
/// <remarks>The choice is process-wide (<see cref="TeamChosen"/>, read by <see cref="KernelParallel.OnOpenMPTeam"/>): two trainings
/// running at once take turns setting it, which can only cost time.</remarks>
internal sealed class ForkTuner
{
    /// <summary>Steps run on the thread pool, untimed, before the first probe.</summary>
    public const int SkipSteps = 2;

    /// <summary>Steps of a probe, half on each policy.</summary>
    public const int ProbeSteps = 8;

    /// <summary>Steps run on the chosen policy between probes.</summary>
    public const int ExploitSteps = 200;

    private static volatile bool teamChosen;
    private readonly List<double> team = [], pool = [];
    private int steps;
    private bool current, timing;
    private long start;

    /// <summary>Whether the step running now forks on the OpenMP team (under <see cref="KernelForkPolicy.Auto"/>).</summary>
    public static bool TeamChosen => teamChosen;

    /// <summary>The policy kept between probes: false (the thread pool) until the first probe ends.</summary>
    public bool Chosen { get; private set; }

    /// <summary>Step <paramref name="index"/>'s policy (0-based, counting the steps this tuner timed) and whether it is a probe step.</summary>
    internal (bool Team, bool Probe) Plan(int index)
    {
        if (index < SkipSteps)
            return (false, false);
        int k = (index - SkipSteps) % (ProbeSteps + ExploitSteps);
        return k < ProbeSteps ? ((k % 4) is 0 or 3, true) : (Chosen, false);
    }

    /// <summary>Records step <paramref name="index"/>'s wall time; the last step of a probe keeps the policy of the lower median.</summary>
    internal void Record(int index, bool teamStep, double ms)
    {
        if (!Plan(index).Probe)
            return;
        (teamStep ? team : pool).Add(ms);
        if ((index - SkipSteps) % (ProbeSteps + ExploitSteps) != ProbeSteps - 1)
            return;
        Chosen = Median(team) < Median(pool);
        team.Clear();
        pool.Clear();
    }

    /// <summary>At a step's start (<c>ModelOptimizer.ZeroGrad</c>): sets this step's policy and starts its clock.</summary>
    public void Begin()
    {
        timing = KernelSettings.Current.KernelForks == KernelForkPolicy.Auto && OpenMPTeam.IsAvailable && KernelParallel.Workers > 1;
        if (!timing)
            return;
        teamChosen = current = Plan(steps).Team;
        start = Stopwatch.GetTimestamp();
    }

    /// <summary>At a step's end (after <c>ModelOptimizer.Step</c>): records its time.</summary>
    public void End()
    {
        if (!timing)
            return;
        timing = false;
        Record(steps++, current, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }

    private static double Median(List<double> values)
    {
        if (values.Count == 0)
            return double.PositiveInfinity;
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
