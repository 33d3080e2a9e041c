namespace Microsoft.ML.MemoryFormer.Tests;

/// <summary>The repository checkout the tests were built in, for tests that read its files (docs, tools); null when the
/// test output was copied elsewhere, and such tests skip.</summary>
internal static class RepositoryFolder
{
    public static string? Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Microsoft.ML.MemoryFormer.sln"))) return dir.FullName;
        return null;
    }
}
