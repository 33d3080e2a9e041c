using System.Runtime.InteropServices;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// Keeps glibc's main heap from handing its free top back to the kernel between training steps, so that the next step
/// reuses those pages instead of faulting fresh ones in.
/// </summary>
/// <remarks>
/// <para>Why: a training step allocates hundreds of megabytes of torch temporaries (autograd's backward buffers,
/// residual adds, copies, attention) and frees them again. glibc returns the free top of its heap to the kernel
/// whenever it exceeds the trim threshold (by default dynamic: twice the largest mmapped block freed so far, at most
/// 64 MB), and the next step's first writes fault every page of it in again: in a process that trains one model at
/// d = 512, 47–101 thousand minor faults a step (docs/benchmarks.md, "glibc's heap trimming"). The managed kernels'
/// own outputs already avoid glibc (<c>Layers/Kernels/KernelBuffers.cs</c>); torch's cannot be redirected, so when a
/// training starts this sets three <c>mallopt</c> parameters: <see cref="TrimThreshold"/> (keep up to 1 GiB of free
/// heap top), <see cref="MmapThreshold"/> (blocks up to 32 MB, glibc's largest allowed threshold on 64-bit, come from
/// the heap instead of their own mapping, which every free unmaps) and <see cref="TopPad"/> (grow the heap 64 MB at a
/// time). All three must be set: setting any one freezes glibc's dynamic mmap threshold, and one left at its 128 KB
/// start value maps and unmaps every large temporary (78 thousand faults a step at d = 256).</para>
/// <para>Cost: heap memory freed during a training stays mapped (resident once touched) instead of going back to the
/// kernel, up to 1 GiB of free heap top above what the steps use at their peak; the peak itself does not grow. When
/// the last running training ends (<c>KernelBuffers.Training</c>'s lease), <c>malloc_trim(0)</c> returns what is free;
/// the parameters stay for the rest of the process (glibc has no way back to its dynamic threshold).</para>
/// <para>Applied at most once per process, only on Linux with glibc, only when <see cref="KernelSettings.RetainTrainingHeap"/>
/// is on when the first training starts, and only when the process chose no allocator policy itself: neither
/// <c>GLIBC_TUNABLES</c> nor any <c>MALLOC_*</c> variable set. Results do not depend on it, only speed and memory: it
/// changes where blocks lie, never what is written into them.</para>
/// </remarks>
internal static partial class TrainingHeap
{
    /// <summary>Free heap top glibc keeps instead of trimming it (<c>M_TRIM_THRESHOLD</c>): 1 GiB.</summary>
    public const int TrimThreshold = 1 << 30;

    /// <summary>Blocks smaller than this come from the heap, not their own mapping (<c>M_MMAP_THRESHOLD</c>): 32 MiB,
    /// the most glibc accepts on 64-bit (half its 64 MiB sub-heap size).</summary>
    public const int MmapThreshold = 32 << 20;

    /// <summary>Extra bytes glibc takes whenever it grows the heap (<c>M_TOP_PAD</c>): 64 MiB.</summary>
    public const int TopPad = 64 << 20;

    // mallopt's parameter numbers (glibc's malloc.h).
    internal const int M_TRIM_THRESHOLD = -1, M_TOP_PAD = -2, M_MMAP_THRESHOLD = -3;

    private static int decided;

    /// <summary>Whether this process's allocator parameters were set here.</summary>
    public static bool Applied { get; private set; }

    /// <summary>Called when a training starts: applies the parameters once per process if the switch is on and the
    /// process chose none.</summary>
    public static void TrainingStarted()
    {
        if (!OperatingSystem.IsLinux() || Interlocked.Exchange(ref decided, 1) != 0)
            return;
        try
        {
            Applied = Apply(KernelSettings.Current.RetainTrainingHeap, Environment.GetEnvironmentVariables().Keys.Cast<string>(),
                (p, v) => mallopt(p, v) == 1);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc: leave the allocator as it is.
        }
    }

    /// <summary>Called when the last running training ends: gives the heap's free memory back to the kernel.</summary>
    public static void TrainingsEnded()
    {
        if (Applied)
            malloc_trim(0);
    }

    /// <summary>Sets the three parameters through <paramref name="set"/> (mallopt: parameter, value → success) when
    /// <paramref name="switchOn"/> and none of the environment's <paramref name="variables"/> chose an allocator policy;
    /// returns whether all three were set. The mmap threshold goes first: it is the one whose dynamic value any of the
    /// three freezes.</summary>
    internal static bool Apply(bool switchOn, IEnumerable<string> variables, Func<int, int, bool> set) =>
        switchOn && !ChoseAllocatorPolicy(variables)
        && set(M_MMAP_THRESHOLD, MmapThreshold) & set(M_TRIM_THRESHOLD, TrimThreshold) & set(M_TOP_PAD, TopPad);

    /// <summary>Whether any of <paramref name="variables"/> (environment variable names) sets glibc's allocator:
    /// <c>GLIBC_TUNABLES</c> or a <c>MALLOC_</c> variable (<c>MALLOC_ARENA_MAX</c>, <c>MALLOC_TRIM_THRESHOLD_</c>, …).</summary>
    internal static bool ChoseAllocatorPolicy(IEnumerable<string> variables) =>
        variables.Any(v => v == "GLIBC_TUNABLES" || v.StartsWith("MALLOC_", StringComparison.Ordinal));

    [LibraryImport("libc.so.6")]
    private static partial int mallopt(int param, int value);

    [LibraryImport("libc.so.6")]
    private static partial int malloc_trim(nuint pad);
}
