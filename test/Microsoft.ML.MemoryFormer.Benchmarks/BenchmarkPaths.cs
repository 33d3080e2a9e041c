namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>Finds the repository root and the developer data sets next to it (<c>../shared/data</c>).</summary>
internal static class BenchmarkPaths
{
    /// <summary>The folder holding Microsoft.ML.MemoryFormer.sln, searched upwards from the working directory and the binary.</summary>
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>A developer data file, <c>../shared/data/{relative}</c> from the repository root.</summary>
    public static string SharedData(string relative) => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data", relative));

    private static string FindRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Microsoft.ML.MemoryFormer.sln"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}
