using System.Diagnostics;

namespace Microsoft.ML.MemoryFormer.Tests.Packaging;

/// <summary>
/// The TorchSharp native fix (build/Microsoft.ML.MemoryFormer.targets, shipped as the package's buildTransitive
/// targets) runs through MSBuild on a copy of the unpatched libLibTorchSharp.so from the NuGet cache.
/// </summary>
public class NativeFixTests
{
    private const string VersionName = "GLIBCXX_3.4.32";

    /// <summary>
    /// An app built on a distribution whose libstdc++ already has GLIBCXX_3.4.32 and deployed to Debian 12 must still
    /// get the patched library: the fix may not look at the build machine's libstdc++. The build machine here is made
    /// to look newer by pointing the old check's property at a file that names the version.
    /// </summary>
    [SkippableFact]
    public void The_output_copy_is_patched_even_when_the_build_machine_has_a_newer_libstdcxx()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the native fix only runs on Linux");
        var original = UnpatchedLibrary();
        Skip.If(original is null, "TorchSharp 0.107.0's libLibTorchSharp.so is not in the NuGet cache");
        var folder = Directory.CreateTempSubdirectory("mf-nativefix-").FullName;
        try
        {
            var newerLibStdCxx = Path.Combine(folder, "libstdc++.so.6");
            File.WriteAllText(newerLibStdCxx, $"\0{VersionName}\0GLIBCXX_3.4.33\0");
            var output = Path.Combine(folder, "out") + "/";
            var library = Path.Combine(output, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
            Directory.CreateDirectory(Path.GetDirectoryName(library)!);
            File.Copy(original!, library);

            RunBuild(folder, output, $"-p:_MemoryFormerSystemLibStdCxx={newerLibStdCxx}");

            byte[] before = File.ReadAllBytes(original!), after = File.ReadAllBytes(library);
            Assert.Equal(before.Length, after.Length);
            var changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToArray();
            var offset = Assert.Single(changed);
            Assert.Equal(before[offset] | 0x2, after[offset]); // VER_FLG_WEAK in the Elf64_Vernaux flags, nothing else

            RunBuild(folder, output); // running again leaves the already patched copy as it is
            Assert.Equal(after, File.ReadAllBytes(library));
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    private static string? UnpatchedLibrary()
    {
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var path = Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        return File.Exists(path) ? path : null;
    }

    /// <summary>Builds a project that imports only the fix's targets file and has <paramref name="output"/> as OutDir.</summary>
    private static void RunBuild(string folder, string output, params string[] properties)
    {
        var targets = Path.Combine(AppContext.BaseDirectory, "Packaging", "Microsoft.ML.MemoryFormer.targets");
        var project = Path.Combine(folder, "probe.proj");
        File.WriteAllText(project, $"""
            <Project>
              <PropertyGroup><OutDir>{output}</OutDir></PropertyGroup>
              <Target Name="Build" />
              <Import Project="{targets}" />
            </Project>
            """);
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "msbuild", project, "-t:Build", "-nologo", "-v:m", "-nodeReuse:false" }.Concat(properties))
            info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"dotnet msbuild failed ({process.ExitCode}):\n{stdout.Result}\n{stderr}");
    }
}
