using System.Runtime.InteropServices;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Asks Linux to back the inference copies of the weights (<see cref="Int8Matrix"/>, <see cref="Bf16Matrix"/>) with
/// transparent huge pages (2 MB) where the system allows them only on request (<c>/sys/kernel/mm/transparent_hugepage/enabled</c>
/// = <c>madvise</c>, a common default). A decode step's gathers read ≈ 4,000 rows of 1–4 KB scattered over ≈ 1–3 GB of
/// Memory Layer tables, so with 4 KB pages nearly every row costs a page walk on top of its DRAM miss; with 2 MB pages
/// the second-level TLB covers the tables. Only the whole 2 MB pages inside a copy are advised, before the copy is
/// written (the pages are then faulted in huge). A hint: it changes no value, and where it is refused (other systems,
/// THP off, no free huge pages) the copy simply keeps 4 KB pages.
/// </summary>
internal static partial class HugePages
{
    private const long PageBytes = 2L << 20;
    private const int AdviseHugePage = 14;          // MADV_HUGEPAGE

    /// <summary>Whether new copies are advised (on by default; <c>perf decode-profile</c> turns it off to compare).</summary>
    public static bool Enabled { get; set; } = true;

    /// <summary>Advises the whole 2 MB pages inside [<paramref name="start"/>, start + <paramref name="bytes"/>); returns
    /// whether any range was advised (false: disabled, not Linux, smaller than a page, or refused).</summary>
    public static unsafe bool Advise(void* start, long bytes)
    {
        if (!Enabled || !OperatingSystem.IsLinux() || bytes < PageBytes)
            return false;
        long first = ((long)start + PageBytes - 1) & ~(PageBytes - 1), end = ((long)start + bytes) & ~(PageBytes - 1);
        if (end <= first)
            return false;
        try
        {
            return madvise((nint)first, (nuint)(end - first), AdviseHugePage) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;                                                    // not glibc: keep 4 KB pages
        }
    }

    [LibraryImport("libc.so.6")]
    private static partial int madvise(nint address, nuint length, int advice);
}
