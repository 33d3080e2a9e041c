using Microsoft.ML.MemoryFormer.Interop;
using Microsoft.ML.MemoryFormer.Models;
using static Microsoft.ML.MemoryFormer.Tests.Interop.InteropFiles;

namespace Microsoft.ML.MemoryFormer.Tests.Interop;

/// <summary>
/// tools/interop/gpu/exported holds the official fixture as exported by this library (pipeline layout), the input of the
/// GPU check (tools/interop/gpu_check.sh), which has no .NET. This test keeps it equal, byte for byte, to what the
/// library writes today; set MF_INTEROP_WRITE_GPU_EXPORT=1 to rewrite it after a deliberate format change, and
/// MF_INTEROP_EXPORT_SINGLE_TO=folder to also write the single-file layout there (to check it with torch).
/// </summary>
public class GpuCheckExportTests
{
    [SkippableFact]
    public void Checked_in_export_for_the_gpu_check_is_what_the_library_writes()
    {
        var root = RepositoryFolder.Find();
        Skip.If(root is null, "The repository (tools/interop) is not above the test output folder.");
        var checkedIn = Path.Combine(root!, "tools", "interop", "gpu", "exported");
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        if (Environment.GetEnvironmentVariable("MF_INTEROP_WRITE_GPU_EXPORT") == "1")
        {
            if (Directory.Exists(checkedIn)) Directory.Delete(checkedIn, recursive: true);
            model.ExportGptNeoXCheckpoint(checkedIn, new GptNeoXExportOptions { PipelineLayout = true });
        }
        if (Environment.GetEnvironmentVariable("MF_INTEROP_EXPORT_SINGLE_TO") is { Length: > 0 } single)
            model.ExportGptNeoXCheckpoint(single);                                  // for tools/interop/make_fixture.py --verify
        using var folder = NewFolder();
        model.ExportGptNeoXCheckpoint(folder.Path, new GptNeoXExportOptions { PipelineLayout = true });
        var written = Directory.GetFiles(folder.Path, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(folder.Path, f)).Order().ToList();
        var stored = Directory.Exists(checkedIn)
            ? Directory.GetFiles(checkedIn, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(checkedIn, f)).Order().ToList() : [];
        Assert.Equal(written, stored);
        foreach (var file in written)
            Assert.True(File.ReadAllBytes(Path.Combine(folder.Path, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(checkedIn, file))),
                $"{file} differs from what the library writes; rerun with MF_INTEROP_WRITE_GPU_EXPORT=1 if the change is deliberate.");
    }
}
