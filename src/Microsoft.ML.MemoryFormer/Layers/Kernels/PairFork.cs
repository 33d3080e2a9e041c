using System.Runtime.ExceptionServices;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// A fork/join of exactly two parts for the batch-1 decode step: part 0 on the calling thread, part 1 on one
/// dedicated helper thread that waits for work by spinning briefly, then sleeps. A decode step forks ≈ 20–30 times
/// (MemoryFormer: three gathers per block; dense: four GEMVs per block; both: the head), each job only tens of
/// microseconds long, so the few microseconds a <c>Parallel.For</c> spends on tasks, replicas and thread-pool wake-ups
/// may be a visible share of the step. Both models' steps go through it alike; opt-in (<see cref="Enabled"/>).
/// </summary>
/// <remarks>
/// One fork at a time: a caller that finds the helper busy (another thread decoding, or a fork inside a part) runs
/// through <see cref="KernelParallel.For"/> instead, with the same parts; and a caller that finishes part 0 before the
/// helper has started part 1 runs part 1 itself (on a loaded machine the helper may wait long for a core). The results
/// never depend on which thread ran a part. An exception in a part is rethrown on the caller after both parts ended
/// (the caller's own if both threw).
/// </remarks>
internal static class PairFork
{
    /// <summary>Spin iterations (each <c>Thread.SpinWait(20)</c>) the helper waits for the next job before it sleeps:
    /// meant to cover the gaps between the forks of a decode step (tens to hundreds of µs; not tuned).</summary>
    private const int SpinIterations = 2000;

    private static readonly SemaphoreSlim Wake = new(0);
    private static readonly object StartGate = new();
    private static Thread? helper;
    private static Action<int>? job;
    private static ExceptionDispatchInfo? failure;
    private static int busy;                        // 1 while a caller owns the helper
    private static int state;                       // Idle, Posted (part 1 unclaimed), Helping (the helper runs it) or Taken (the caller does)
    private static int sleeping;                    // 1 while the helper waits on Wake

    private const int Idle = 0, Posted = 1, Helping = 2, Taken = 3;

    /// <summary>Whether forks go to the helper thread; off by default (every fork then takes <see cref="KernelParallel.For"/>)
    /// until an idle run shows it pays: on a loaded machine (load 20–28) it made whole int8 steps of both models ≈ 1.6×
    /// slower (the spinning helper takes time slices from the decoding thread), the blocks alone unchanged.
    /// <c>perf decode-profile</c> times both ways.</summary>
    public static bool Enabled { get; set; }

    /// <summary>Runs <paramref name="part"/>(0) and <paramref name="part"/>(1) concurrently and returns when both ended;
    /// <paramref name="workPerPart"/> is passed to <see cref="KernelParallel.For"/> when the helper is not used (it
    /// decides whether a small job runs inline).</summary>
    public static void Run(long workPerPart, Action<int> part)
    {
        if (!Enabled || KernelParallel.Workers != 2 || 2 * workPerPart < KernelParallel.InlineWork
            || Interlocked.CompareExchange(ref busy, 1, 0) != 0)
        {
            try
            {
                KernelParallel.For(2, workPerPart, (first, last) =>
                {
                    for (int p = first; p < last; p++)
                        part(p);
                });
            }
            catch (AggregateException e) when (e.InnerExceptions.Count == 1)
            {
                ExceptionDispatchInfo.Throw(e.InnerExceptions[0]);          // as the helper path: the part's own exception
            }
            return;
        }
        try
        {
            EnsureHelper();
            job = part;
            Interlocked.Exchange(ref state, Posted);                      // full fence: the job is visible first
            if (Volatile.Read(ref sleeping) == 1)
                Wake.Release();
            ExceptionDispatchInfo? mine = null;
            try
            {
                part(0);
            }
            catch (Exception e)
            {
                mine = ExceptionDispatchInfo.Capture(e);
            }
            // Part 1 not started yet (the helper asleep, or not scheduled on a loaded machine): the caller takes it, as
            // Parallel.For's caller takes unclaimed ranges, instead of waiting for a thread that has no core.
            if (Interlocked.CompareExchange(ref state, Taken, Posted) == Posted)
            {
                try
                {
                    part(1);
                }
                catch (Exception e)
                {
                    mine ??= ExceptionDispatchInfo.Capture(e);
                }
            }
            else
            {
                var wait = new SpinWait();
                while (Volatile.Read(ref state) == Helping)
                    wait.SpinOnce(sleep1Threshold: -1);                    // never Sleep(1): a whole millisecond
                mine ??= failure;
            }
            Volatile.Write(ref state, Idle);
            job = null;
            mine?.Throw();
        }
        finally
        {
            Volatile.Write(ref busy, 0);
        }
    }

    private static void EnsureHelper()
    {
        if (helper is not null)
            return;
        lock (StartGate)
            helper ??= StartHelper();
    }

    private static Thread StartHelper()
    {
        var thread = new Thread(Loop) { IsBackground = true, Name = "MemoryFormer decode helper" };
        thread.Start();
        return thread;
    }

    private static void Loop()
    {
        while (true)
        {
            int spins = 0;
            while (Volatile.Read(ref state) != Posted)
            {
                if (++spins < SpinIterations)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                Interlocked.Exchange(ref sleeping, 1);                    // full fence, then re-check: no lost wake-up
                if (Volatile.Read(ref state) != Posted)
                    Wake.Wait();
                Interlocked.Exchange(ref sleeping, 0);
                spins = 0;
            }
            if (Interlocked.CompareExchange(ref state, Helping, Posted) != Posted)
                continue;                                                 // the caller took part 1 itself
            var work = job!;
            failure = null;
            try
            {
                work(1);
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
            Volatile.Write(ref state, Taken);                            // done: the caller sees "not Helping" and resets to Idle
        }
    }
}
