using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>A fresh temporary folder for checkpoint files, deleted with the test; reads back what a checkpoint holds.</summary>
internal sealed class CheckpointFolder : IDisposable
{
    public CheckpointFolder() => Directory.CreateDirectory(Root);

    public string Root { get; } = Path.Combine(Path.GetTempPath(), $"mf-ckpt-{Guid.NewGuid():N}");

    public string File(string name) => Path.Combine(Root, name);

    /// <summary>Files left in the folder that are not <paramref name="expected"/> (e.g. temporary files of a save).</summary>
    public string[] Others(params string[] expected) =>
        Directory.GetFiles(Root).Select(Path.GetFileName).Where(f => !expected.Contains(f)).ToArray()!;

    /// <summary>The completed step a checkpoint holds.</summary>
    public static int StepOf(string path)
    {
        using var archive = ModelArchive.Load(path);
        using var reader = new BinaryReader(archive.OpenRead("loop.bin"));
        using var state = TrainingState.ReadFrom(reader);
        return state.Step;
    }

    /// <summary>The weights, optimizer, best-weights and weight-average entries: equal for two runs that trained bit-identically.</summary>
    public static byte[][] Tensors(string path)
    {
        using var archive = ModelArchive.Load(path);
        return [.. new[] { "weights.bin", "optimizer.bin", "best-weights.bin", "weight-average.bin" }.Where(archive.Contains).Select(archive.Get)];
    }

    public void Dispose()
    {
        if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true);
    }
}
