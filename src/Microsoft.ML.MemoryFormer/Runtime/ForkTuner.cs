using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// Chooses for one training, while <see cref="KernelSettings.KernelForks"/> is <see cref="KernelForkPolicy.Auto"/>, whether
/// the managed kernels fork on libtorch's OpenMP team or on .NET's thread pool, by timing its own steps. After
/// <see cref="SkipSteps"/> steps on the pool it times <see cref="ProbeSteps"/> steps alternating team and pool (A-B-B-A, so a
/// drift of the machine weighs on both) and keeps the one with the lower median until the next probe. The first probes come
/// soon and then ever less often (after 8, 16, 32, 64 and 128 steps, then every <see cref="ExploitSteps"/>): early steps still
/// run code the JIT has not optimised, which can mislead the first probe, and a machine that gets busy or idle during a run is
/// followed. Both policies give the same bits, so the choice changes only time; once the probes are
/// <see cref="ExploitSteps"/> apart they cost about one step in a hundred of the slower policy's extra time.
/// </summary>
internal sealed class ForkTuner
{
    /// <summary>Steps run on the thread pool, untimed, before the first probe.</summary>
    public const int SkipSteps = 2;

    /// <summary>Steps of a probe, half on each policy.</summary>
    public const int ProbeSteps = 8;

    /// <summary>Steps run on the chosen policy after the first probe; each later gap doubles, up to <see cref="ExploitSteps"/>.</summary>
    public const int FirstExploitSteps = 8;

    /// <summary>Most steps run on the chosen policy between probes.</summary>
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

    /// <summary>Step <paramref name="index"/>'s policy (0-based, counting the steps this tuner timed), whether it is a probe step,
    /// and whether it is a probe's last.</summary>
    internal (bool Team, bool Probe, bool Last) Plan(int index)
    {
        if (index < SkipSteps)
            return (false, false, false);
        int start = SkipSteps;
        for (int exploit = FirstExploitSteps; exploit < ExploitSteps; exploit *= 2)
        {
            if (index < start + ProbeSteps + exploit)
                return At(index - start);
            start += ProbeSteps + exploit;
        }
        return At((index - start) % (ProbeSteps + ExploitSteps));

        (bool, bool, bool) At(int k) => k < ProbeSteps ? ((k % 4) is 0 or 3, true, k == ProbeSteps - 1) : (Chosen, false, false);
    }

    /// <summary>Records step <paramref name="index"/>'s wall time; the last step of a probe keeps the policy of the lower median.</summary>
    internal void Record(int index, bool teamStep, double ms)
    {
        var (_, probe, last) = Plan(index);
        if (!probe)
            return;
        (teamStep ? team : pool).Add(ms);
        if (!last)
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

    /// <summary>At the training's end: the thread pool again, unless no step of this tuner chose (another training's choice stands).</summary>
    public void Stop()
    {
        if (steps > 0 || timing)
            teamChosen = false;
        timing = false;
    }

    private static double Median(List<double> values)
    {
        if (values.Count == 0)
            return double.PositiveInfinity;
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
