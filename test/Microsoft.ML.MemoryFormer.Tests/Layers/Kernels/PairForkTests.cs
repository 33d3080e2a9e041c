using Microsoft.ML.MemoryFormer.Layers.Kernels;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The decode step's two-part fork: each part runs once, errors come back, nested and concurrent callers fall back.</summary>
public sealed class PairForkTests : IDisposable
{
    public PairForkTests() => PairFork.Enabled = true;      // opt-in (off by default); only which thread runs a part depends on it

    public void Dispose() => PairFork.Enabled = false;

    private const long Large = KernelParallel.InlineWork;          // enough work per part that the fork is not inlined

    [Fact]
    public void A_part_the_helper_has_not_started_is_taken_by_the_caller()
    {
        var threads = new int[2];
        PairFork.Run(Large, part => threads[part] = Environment.CurrentManagedThreadId);
        Assert.All(threads, t => Assert.NotEqual(0, t));            // both ran, on whichever thread claimed part 1 first
    }

    [Fact]
    public void Each_part_runs_exactly_once_per_fork()
    {
        var counts = new int[2];
        for (int i = 0; i < 200; i++)
            PairFork.Run(Large, part => Interlocked.Increment(ref counts[part]));
        Assert.Equal([200, 200], counts);
    }

    [Fact]
    public void The_second_part_runs_on_another_thread_when_two_workers_are_allowed()
    {
        if (KernelParallel.Workers != 2)
            return;                                                 // one worker: both parts run inline (covered above)
        var threads = new int[2];
        using var started = new ManualResetEventSlim();
        PairFork.Run(Large, part =>
        {
            threads[part] = Environment.CurrentManagedThreadId;
            if (part == 1)
                started.Set();
            else
                started.Wait(TimeSpan.FromSeconds(30));             // else the caller takes part 1 itself once part 0 ends
        });
        Assert.NotEqual(threads[0], threads[1]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void An_exception_in_either_part_reaches_the_caller_after_both_parts_ended(int failing)
    {
        var ended = new int[2];
        var e = Assert.Throws<InvalidOperationException>(() => PairFork.Run(Large, part =>
        {
            Thread.Sleep(part == failing ? 0 : 20);                 // the other part is still running when this one throws
            Interlocked.Exchange(ref ended[part], 1);
            if (part == failing)
                throw new InvalidOperationException($"part {part}");
        }));
        Assert.Equal($"part {failing}", e.Message);
        Assert.Equal([1, 1], ended);
        var counts = new int[2];
        PairFork.Run(Large, part => Interlocked.Increment(ref counts[part]));   // the helper still works
        Assert.Equal([1, 1], counts);
    }

    [Fact]
    public void A_fork_inside_a_part_and_concurrent_callers_complete_with_every_part_run()
    {
        var inner = new int[4];
        PairFork.Run(Large, outer => PairFork.Run(Large, part => Interlocked.Increment(ref inner[(2 * outer) + part])));
        Assert.Equal([1, 1, 1, 1], inner);

        var counts = new int[8];
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, caller =>
        {
            for (int i = 0; i < 50; i++)
                PairFork.Run(Large, part => Interlocked.Increment(ref counts[(2 * caller) + part]));
        });
        Assert.All(counts, c => Assert.Equal(50, c));
    }
}
