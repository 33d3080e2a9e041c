using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Runs a managed kernel's fork/join on libtorch's own OpenMP team (GNU libgomp's <c>GOMP_parallel</c>, the call every
/// <c>#pragma omp parallel</c> of libtorch makes) instead of on .NET's thread pool, so that a training step has one pool
/// of worker threads instead of two.
/// </summary>
/// <remarks>
/// <para>Why: a training step alternates libtorch ops (attention, LayerNorm, residual adds, the head) with the managed
/// kernels dozens of times. After each torch op libtorch's OpenMP worker spins on the second core waiting for the next
/// one (<c>Runtime/OpenMPSpin.cs</c>); after each managed fork/join a .NET thread-pool worker does the same. On a 2-core
/// machine the next fork of the other kind then finds its own worker asleep and the core taken by the other pool's
/// spinning thread. Run on the OpenMP team, a managed kernel right after a torch op gets the worker that is still
/// spinning, and the .NET pool stays asleep.</para>
/// <para>The work is split into the same ranges as <see cref="KernelParallel.For"/>'s thread-pool path and each range is
/// claimed by whichever thread is free, so the results are those of the thread-pool path (no kernel's result depends on
/// which thread runs a range). An exception in a range is caught on the thread that ran it and rethrown on the caller
/// as an <see cref="AggregateException"/>, as <c>Parallel.For</c> does. A fork inside a range (a nested region) runs on
/// its caller's thread alone, as libgomp runs nested regions by default.</para>
/// <para><c>GOMP_parallel</c> is looked up in libtorch's own dependency tree (<c>dlsym</c> on the loaded
/// <c>libtorch_cpu.so</c>), so it is the libgomp instance libtorch's ops use; where there is none (another OpenMP runtime,
/// another system), <see cref="IsAvailable"/> is false and the kernels keep the thread pool.</para>
/// <para>The forks take the team when <see cref="Runtime.KernelSettings.KernelForks"/> says so: fixed to the team, or, by default, while
/// the running training's <see cref="Runtime.ForkTuner"/> has timed it faster than the thread pool. Neither fixed choice holds
/// everywhere: on the idle 2-core machine the team made a step 1.08× faster, on a loaded one it lost by up to 1.30×, since a region
/// ends only when every team thread has reached its barrier, where <c>Parallel.For</c>'s caller takes the ranges of a worker that
/// has no core and returns (docs/benchmarks.md, "The training step's overheads at d = 256"). The same dependency tree also gives MKL's per-thread setting, which libtorch's attention uses in
/// training (<see cref="SerialGemms"/>, <see cref="Runtime.KernelSettings.SerialAttentionGemms"/>).</para>
/// </remarks>
internal static unsafe partial class OpenMPTeam
{
    private static readonly delegate* unmanaged[Cdecl]<delegate* unmanaged[Cdecl]<nint, void>, nint, uint, uint, void> GompParallel =
        (delegate* unmanaged[Cdecl]<delegate* unmanaged[Cdecl]<nint, void>, nint, uint, uint, void>)Resolve("GOMP_parallel");

    private static readonly delegate* unmanaged[Cdecl]<int, int> MklLocalThreads =
        (delegate* unmanaged[Cdecl]<int, int>)Resolve("MKL_Set_Num_Threads_Local");

    private static readonly delegate* unmanaged[Cdecl]<int> ThreadNumber = (delegate* unmanaged[Cdecl]<int>)Resolve("omp_get_thread_num");

    private static long forks;

    /// <summary>Whether libtorch's <c>GOMP_parallel</c> was found in this process.</summary>
    public static bool IsAvailable => GompParallel != null;

    /// <summary>Forks run on the team since the process started (tests: which path the kernels took).</summary>
    public static long Forks => Interlocked.Read(ref forks);

    /// <summary>Runs <paramref name="body"/>(start, end) over [0, <paramref name="count"/>) cut into <paramref name="ranges"/>
    /// ranges (the thread-pool path's cut) on a team of <paramref name="workers"/> OpenMP threads, the caller one of them.</summary>
    /// <exception cref="AggregateException">A range threw; every range's exception is inside.</exception>
    public static void For(int count, int ranges, int workers, Action<int, int> body)
    {
        Interlocked.Increment(ref forks);
        var job = new Job(count, ranges, body);
        var handle = GCHandle.Alloc(job);
        try
        {
            GompParallel(&Enter, GCHandle.ToIntPtr(handle), (uint)workers, 0);
        }
        finally
        {
            handle.Free();
        }
        if (job.Errors is { } errors)
            throw new AggregateException(errors);
    }

    /// <summary>Whether MKL's per-thread setting can be made here (<see cref="SerialGemms"/>, <see cref="SerialGemmsOnWorkers"/>).</summary>
    public static bool CanSetMklThreads => IsAvailable && MklLocalThreads != null && ThreadNumber != null;

    /// <summary>Sets MKL's thread count for GEMMs started on the calling thread (MKL's C call <c>MKL_Set_Num_Threads_Local</c>, by value: 1 = run them on
    /// this thread alone, 0 = back to the process setting); returns the previous value.</summary>
    public static int SerialGemms(int threads) => MklLocalThreads(threads);

    /// <summary>Sets MKL's per-thread count to 1 on every thread of libtorch's OpenMP team but the caller's: those threads start
    /// GEMMs only inside a parallel region (flash attention's blocks), where MKL runs them on the thread alone anyway, but
    /// still opens a nested one-thread OpenMP region per call unless told to run serially.</summary>
    public static void SerialGemmsOnWorkers(int workers) => GompParallel(&SetSerial, 0, (uint)workers, 0);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void SetSerial(nint unused)
    {
        if (ThreadNumber() != 0)
            _ = MklLocalThreads(1);
    }

    /// <summary>The team's entry, on every thread of the team: claims ranges until none is left.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void Enter(nint job) => ((Job)GCHandle.FromIntPtr(job).Target!).Work();

    /// <summary>One fork: the ranges, the next unclaimed one, and the exceptions caught.</summary>
    private sealed class Job(int count, int ranges, Action<int, int> body)
    {
        private readonly object gate = new();
        private int next;

        public List<Exception>? Errors { get; private set; }

        /// <summary>Claims and runs ranges until none is left; never throws (an exception unwinding into libgomp would end the process).</summary>
        public void Work()
        {
            for (int r = Interlocked.Increment(ref next) - 1; r < ranges; r = Interlocked.Increment(ref next) - 1)
            {
                int start = (int)((long)count * r / ranges);
                int end = (int)((long)count * (r + 1) / ranges);
                try
                {
                    body(start, end);
                }
                catch (Exception e)
                {
                    lock (gate)
                        (Errors ??= []).Add(e);
                }
            }
        }
    }

    /// <summary><paramref name="symbol"/> from libtorch's dependency tree, or 0.</summary>
    private static nint Resolve(string symbol)
    {
        if (!OperatingSystem.IsLinux())
            return 0;
        try
        {
            _ = torch.get_num_threads();                                     // libtorch loaded (and with it its libgomp)
            foreach (string library in (ReadOnlySpan<string>)["libtorch_cpu.so", "libLibTorchSharp.so"])
            {
                nint handle = dlopen(library, RtldLazy | RtldNoLoad);        // only a library already loaded
                if (handle == 0)
                    continue;
                nint address = dlsym(handle, symbol);               // searches the library and its dependencies
                _ = dlclose(handle);                                          // balances this dlopen; the library stays loaded
                if (address != 0)
                    return address;
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No glibc 2.34+ dlopen in libc.so.6: keep the thread pool.
        }
        return 0;
    }

    private const int RtldLazy = 0x1, RtldNoLoad = 0x4;

    [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint dlopen(string file, int mode);

    [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint dlsym(nint handle, string symbol);

    [LibraryImport("libc.so.6")]
    private static partial int dlclose(nint handle);
}
