using System.Globalization;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// The data-cache sizes of the machine the kernels run on, read once from Linux's
/// <c>/sys/devices/system/cpu/cpu0/cache/index*/</c> (level, type, size), so that working sets sized to a cache follow the
/// machine instead of the one the kernels were first tuned on.
/// </summary>
/// <remarks>
/// <para>Why: the kernels' L2-sized scratches (the tiled forward's chunk groups, <c>Layers/Kernels/TiledGather.cs</c>) were
/// tuned on an AMD Zen 4 with 1 MB of L2 a core; the project's machine became an Intel Xeon (Emerald Rapids) with 2 MB
/// (docs/benchmarks.md, "The project's machine is now an Intel Xeon"). Where the files are missing or unreadable (other
/// systems, containers without sysfs) the Zen 4 sizes are used, so nothing changes there.</para>
/// <para>Results never depend on these sizes: every plan sized from them is a way of cutting the same sums in the same order
/// (the kernels' tests compare plans byte for byte); only speed does.</para>
/// </remarks>
internal static class CacheSizes
{
    /// <summary>The L2 size assumed when the machine's cannot be read: 1 MB, a Zen 4 core's.</summary>
    public const long FallbackL2Bytes = 1L << 20;

    /// <summary>The L3 size assumed when the machine's cannot be read: 32 MB, a Zen 4 CCD's.</summary>
    public const long FallbackL3Bytes = 32L << 20;

    private static readonly Lazy<(long L2, long L3)> Read = new(() => FromSysfs("/sys/devices/system/cpu/cpu0/cache"));

    /// <summary>One core's unified (or data) L2 in bytes.</summary>
    public static long L2Bytes => Read.Value.L2;

    /// <summary>The L3 the first core shares, in bytes (as the system reports it; on a VM that is the host's whole L3).</summary>
    public static long L3Bytes => Read.Value.L3;

    /// <summary>The L2 and L3 sizes described under <paramref name="folder"/> (index0, index1, … each with <c>level</c>,
    /// <c>type</c> and <c>size</c> such as "2048K"); a level not found, or any read that fails, gives its fallback.</summary>
    internal static (long L2, long L3) FromSysfs(string folder)
    {
        long l2 = 0, l3 = 0;
        try
        {
            if (Directory.Exists(folder))
                foreach (var index in Directory.EnumerateDirectories(folder, "index*"))
                {
                    string type = ReadText(Path.Combine(index, "type"));
                    if (type is not ("Unified" or "Data")
                        || !int.TryParse(ReadText(Path.Combine(index, "level")), NumberStyles.None, CultureInfo.InvariantCulture, out int level))
                        continue;
                    long size = ParseSize(ReadText(Path.Combine(index, "size")));
                    if (level == 2)
                        l2 = Math.Max(l2, size);
                    else if (level == 3)
                        l3 = Math.Max(l3, size);
                }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return (l2 > 0 ? l2 : FallbackL2Bytes, l3 > 0 ? l3 : FallbackL3Bytes);
    }

    /// <summary>"48K", "2048K", "300M" or a plain byte count → bytes; 0 when it cannot be read.</summary>
    internal static long ParseSize(string text)
    {
        text = text.Trim();
        if (text.Length == 0)
            return 0;
        long unit = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 };
        string digits = unit == 1 ? text : text[..^1];
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long value) && value > 0 ? value * unit : 0;
    }

    private static string ReadText(string path) => File.Exists(path) ? File.ReadAllText(path).Trim() : "";
}
