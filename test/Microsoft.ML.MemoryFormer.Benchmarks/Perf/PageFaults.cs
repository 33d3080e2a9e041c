namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>The process's minor page faults so far (Linux <c>/proc/self/stat</c>; 0 elsewhere).</summary>
internal static class PageFaults
{
    public static long Minor()
    {
        try
        {
            string stat = File.ReadAllText("/proc/self/stat");
            // Fields after the parenthesised command name: state is field 3, minflt field 10.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return 0;
        }
    }
}
