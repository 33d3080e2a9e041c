using System.Collections.Concurrent;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.MemoryFormer.Tests.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// libtorch's OpenMP team from managed code (<see cref="OpenMPTeam"/>): the kernels' forks on it (<see cref="KernelSettings.KernelForks"/>):
/// libtorch's libgomp is found, every range runs once on the team's threads, errors come back, nested forks run; and training steps
/// give the same bytes with the forks on the team or the thread pool, and with attention's GEMMs serial or in nested regions
/// (<see cref="KernelSettings.SerialAttentionGemms"/>).
/// </summary>
public class OpenMPTeamTests
{
    [Fact]
    public void Libtorchs_libgomp_is_found_on_linux()
    {
        if (OperatingSystem.IsLinux())
            Assert.True(OpenMPTeam.IsAvailable);
    }

    [Theory]
    [InlineData(1000, 8, 2)]
    [InlineData(7, 7, 2)]
    [InlineData(5, 3, 1)]
    public void Every_range_of_the_thread_pool_paths_cut_runs_exactly_once(int count, int ranges, int workers)
    {
        if (!OpenMPTeam.IsAvailable)
            return;
        var seen = new ConcurrentBag<(int Start, int End)>();
        OpenMPTeam.For(count, ranges, workers, (start, end) => seen.Add((start, end)));
        var expected = Enumerable.Range(0, ranges).Select(r => ((int)((long)count * r / ranges), (int)((long)count * (r + 1) / ranges)));
        Assert.Equal(expected.Order(), seen.Order());
    }

    [Fact]
    public void A_team_of_two_runs_ranges_on_two_threads()
    {
        if (!OpenMPTeam.IsAvailable)
            return;
        var threads = new ConcurrentDictionary<int, int>();
        using var second = new ManualResetEventSlim();
        OpenMPTeam.For(2, 2, 2, (start, _) =>
        {
            threads[start] = Environment.CurrentManagedThreadId;
            if (start == 0)
                Assert.True(second.Wait(TimeSpan.FromSeconds(30)));          // only another thread can run range 1 meanwhile
            else
                second.Set();
        });
        Assert.NotEqual(threads[0], threads[1]);
    }

    [Fact]
    public void An_exception_in_a_range_reaches_the_caller_and_the_other_ranges_still_run()
    {
        if (!OpenMPTeam.IsAvailable)
            return;
        int ran = 0;
        var e = Assert.Throws<AggregateException>(() => OpenMPTeam.For(8, 8, 2, (start, _) =>
        {
            Interlocked.Increment(ref ran);
            if (start == 3)
                throw new InvalidOperationException("range 3");
        }));
        Assert.Equal("range 3", Assert.Single(e.InnerExceptions).Message);
        Assert.Equal(8, ran);
    }

    [Fact]
    public void A_fork_inside_a_range_runs_all_of_its_own_ranges()
    {
        if (!OpenMPTeam.IsAvailable)
            return;
        int inner = 0;
        OpenMPTeam.For(4, 4, 2, (_, _) => OpenMPTeam.For(10, 5, 2, (start, end) => Interlocked.Add(ref inner, end - start)));
        Assert.Equal(40, inner);
    }

    [Fact]
    public void Training_steps_give_the_same_bytes_with_forks_on_the_openmp_team_or_the_thread_pool()
    {
        long before = OpenMPTeam.Forks;
        var pool = Train(k => k.KernelForks = KernelForkPolicy.ThreadPool);
        long afterPool = OpenMPTeam.Forks;
        var team = Train(k => k.KernelForks = KernelForkPolicy.OpenMPTeam);
        if (OpenMPTeam.IsAvailable && KernelParallel.Workers > 1)
        {
            Assert.Equal(before, afterPool);                                      // off: no fork took the team
            Assert.True(OpenMPTeam.Forks > afterPool);                            // on: the kernels' forks took it
        }
        Assert.Equal(pool.Losses, team.Losses);
        Assert.Equal(pool.Parameters.Length, team.Parameters.Length);
        for (int i = 0; i < pool.Parameters.Length; i++)
            Assert.True(pool.Parameters[i].AsSpan().SequenceEqual(team.Parameters[i]), $"parameter {i} differs");
    }

    [Fact]
    public void A_training_that_chooses_its_forks_by_timing_gives_the_bytes_of_the_thread_pool()
    {
        var options = new TrainingOptions { MaxSteps = ForkTuner.SkipSteps + ForkTuner.ProbeSteps + 2, WarmupSteps = 1, ReportEvery = 1 };
        var pool = Train(k => k.KernelForks = KernelForkPolicy.ThreadPool, options);
        long before = OpenMPTeam.Forks;
        var auto = Train(k => k.KernelForks = KernelForkPolicy.Auto, options);   // skip, probe both, then the choice
        if (OpenMPTeam.IsAvailable && KernelParallel.Workers > 1)
            Assert.True(OpenMPTeam.Forks > before);                               // the probe's team steps took the team
        Assert.Equal(pool.Losses, auto.Losses);
        for (int i = 0; i < pool.Parameters.Length; i++)
            Assert.True(pool.Parameters[i].AsSpan().SequenceEqual(auto.Parameters[i]), $"parameter {i} differs");
    }

    [Fact]
    public void Training_steps_give_the_same_bytes_with_attentions_gemms_serial_or_in_nested_regions()
    {
        if (!OperatingSystem.IsLinux())
            return;
        Assert.True(OpenMPTeam.CanSetMklThreads);
        int before = OpenMPTeam.SerialGemms(3);                                     // this thread's MKL setting (torch.set_num_threads sets it), 3 meanwhile
        var nested = Train(k => k.SerialAttentionGemms = false);
        var serial = Train(k => k.SerialAttentionGemms = true);
        int after = OpenMPTeam.SerialGemms(before);
        Assert.Equal(nested.Losses, serial.Losses);
        for (int i = 0; i < nested.Parameters.Length; i++)
            Assert.True(nested.Parameters[i].AsSpan().SequenceEqual(serial.Parameters[i]), $"parameter {i} differs");
        Assert.Equal(3, after);                                                     // the caller's own MKL setting restored after each call
    }

    /// <summary>Three steps of a small MemoryFormer (large enough that its kernels fork and its attention runs blocks on both threads);
    /// every parameter's bytes and the losses.</summary>
    private static (byte[][] Parameters, IReadOnlyList<double> Losses) Train(Action<KernelSettings> change, TrainingOptions? options = null)
        => SeededTraining.Run(change, MemoryFormerConfig.Nano with { Width = 256, Heads = 2, BitsPerChunk = 4, Layers = 2, ContextLength = 32 },
            seed: 5, windowSeed: 6, batchSize: 16, options ?? new TrainingOptions { MaxSteps = 3, WarmupSteps = 1, ReportEvery = 1 });
}
