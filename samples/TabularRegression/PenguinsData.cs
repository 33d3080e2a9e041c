using System.Diagnostics;

namespace TabularRegression;

/// <summary>
/// Finds penguins.csv: a file given on the command line, the sample's cache, or Debian's r-cran-palmerpenguins package
/// fetched with <c>apt-get download</c> and unpacked with <c>dpkg -x</c> (no install) into the cache.
/// </summary>
internal static class PenguinsData
{
    private const string PackageFile = "usr/lib/R/site-library/palmerpenguins/extdata/penguins.csv";

    public static string Locate(string[] args)
    {
        if (args.Length > 0) return File.Exists(args[0]) ? args[0] : throw new FileNotFoundException($"No file at {args[0]}.");
        var cache = Path.Combine(AppContext.BaseDirectory, "data-cache");
        var target = Path.Combine(cache, "penguins.csv");
        if (File.Exists(target)) return target;
        Directory.CreateDirectory(cache);
        Console.WriteLine("Fetching penguins.csv from Debian's r-cran-palmerpenguins package (apt-get download + dpkg -x)...");
        if (Run("apt-get", "download r-cran-palmerpenguins", cache) != 0 && (Run("apt-get", "update -qq", cache) != 0
            || Run("apt-get", "download r-cran-palmerpenguins", cache) != 0))
            throw new InvalidOperationException("apt-get download r-cran-palmerpenguins failed; pass the path of a penguins.csv instead.");
        var deb = Directory.GetFiles(cache, "r-cran-palmerpenguins*.deb").First();
        var unpacked = Path.Combine(cache, "deb");
        if (Run("dpkg", $"-x \"{deb}\" \"{unpacked}\"", cache) != 0) throw new InvalidOperationException($"dpkg -x {deb} failed.");
        File.Copy(Path.Combine(unpacked, PackageFile), target, overwrite: true);
        return target;
    }

    private static int Run(string file, string arguments, string folder)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, arguments) { WorkingDirectory = folder })!;
            process.WaitForExit();
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;   // apt-get or dpkg is not installed (not a Debian-family system)
        }
    }
}
