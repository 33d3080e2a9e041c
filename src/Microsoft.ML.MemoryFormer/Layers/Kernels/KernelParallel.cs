using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Splits a kernel's items into contiguous ranges and runs them on the thread pool, with as many workers as
/// libtorch is allowed (<c>torch.get_num_threads()</c>), so the managed kernels follow the same thread setting
/// as the torch ops around them. Small jobs run inline: a fork/join costs a few microseconds, which matters
/// at batch-1 decode.
/// </summary>
internal static class KernelParallel
{
    /// <summary>Below this many multiply-adds (or bytes touched) a job runs on the calling thread.</summary>
    public const long InlineWork = 1L << 17;

    /// <summary>Workers a job may use: libtorch's thread setting, at most the logical CPUs.</summary>
    public static int Workers => Math.Max(1, Math.Min(torch.get_num_threads(), Environment.ProcessorCount));

    /// <summary>Whether forks run on libtorch's OpenMP team (<see cref="OpenMPTeam"/>) now: chosen (<see cref="Runtime.KernelSettings.KernelForks"/>
    /// fixed to the team, or <see cref="Runtime.KernelForkPolicy.Auto"/> with the running training's <see cref="Runtime.ForkTuner"/> on the team),
    /// a training running (<see cref="KernelBuffers.TrainingRuns"/>) and libtorch's libgomp found; otherwise they take .NET's thread pool.</summary>
    public static bool OnOpenMPTeam => Runtime.KernelSettings.Current.KernelForks switch
    {
        Runtime.KernelForkPolicy.OpenMPTeam => true,
        Runtime.KernelForkPolicy.Auto => Runtime.ForkTuner.TeamChosen,
        _ => false,
    } && KernelBuffers.TrainingRuns && OpenMPTeam.IsAvailable;

    /// <summary>Runs <paramref name="body"/>(start, end) over [0, count) in a few ranges per worker.</summary>
    /// <param name="count">Number of items.</param>
    /// <param name="workPerItem">Rough cost of one item (multiply-adds), to decide whether to fork at all.</param>
    /// <param name="body">Processes items [start, end); must be safe to run concurrently on disjoint ranges.</param>
    public static void For(int count, long workPerItem, Action<int, int> body)
    {
        if (count <= 0)
            return;
        int workers = Workers;
        if (workers == 1 || count == 1 || count * Math.Max(1, workPerItem) < InlineWork)
        {
            body(0, count);
            return;
        }

        // A few ranges per worker balance a machine where other processes steal a core now and then.
        int ranges = Math.Min(count, workers * 4);
        if (OnOpenMPTeam)
        {
            OpenMPTeam.For(count, ranges, workers, body);                   // the same ranges on libtorch's worker threads
            return;
        }
        // TaskScheduler.Default explicitly: Parallel.For otherwise inherits TaskScheduler.Current, and a caller
        // running under a limited scheduler (xunit's test scheduler, measured) then runs every range inline.
        var options = new ParallelOptions { MaxDegreeOfParallelism = workers, TaskScheduler = TaskScheduler.Default };
        Parallel.For(0, ranges, options, r =>
        {
            int start = (int)((long)count * r / ranges);
            int end = (int)((long)count * (r + 1) / ranges);
            body(start, end);
        });
    }
}
