using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// <see cref="KernelSettings.RetainTrainingHeap"/> in real processes (the parameters are set once per process, so each
/// case is its own test host): the switch and a process's own allocator choice are honoured, and the losses and the
/// saved model are bit-identical whether glibc keeps its heap or trims it — also when glibc fills every block it hands
/// out with junk (<c>glibc.malloc.perturb</c>), so no result can hang on what a fresh block happened to hold.
/// </summary>
public class TrainingHeapBitsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    /// <summary>Trains the test host's tiny model for 12 steps; returns its "HEAP RETAINED" answer and its result file.</summary>
    private static (string Heap, string[] Result) Train(CheckpointFolder folder, string name, string? tunables, params string[] extra)
    {
        var environment = new Dictionary<string, string?> { ["GLIBC_TUNABLES"] = tunables };
        foreach (var variable in Environment.GetEnvironmentVariables().Keys.Cast<string>().Where(v => v.StartsWith("MALLOC_", StringComparison.Ordinal)))
            environment[variable] = null;                                          // the runner's own choice must not decide the case
        using var child = ChildProcess.Start(environment,
            ["train", "--checkpoint", folder.File(name + ".ckpt"), "--output", folder.File(name + ".txt"), "--steps", "12", "--every", "100", .. extra]);
        string heap = child.WaitForLine(l => l.StartsWith("HEAP RETAINED", StringComparison.Ordinal), Timeout);
        Assert.Equal(0, child.WaitForExit(Timeout));
        return (heap, File.ReadAllLines(folder.File(name + ".txt")));
    }

    [Fact]
    public void Training_gives_the_same_bits_with_the_heap_kept_trimmed_by_default_or_perturbed()
    {
        if (!OperatingSystem.IsLinux())
            return;
        using var folder = new CheckpointFolder();
        var kept = Train(folder, "kept", tunables: null);
        var off = Train(folder, "off", tunables: null, "--no-retain-heap");
        var chosen = Train(folder, "perturbed", tunables: "glibc.malloc.perturb=165");

        Assert.Equal("HEAP RETAINED True", kept.Heap);
        Assert.Equal("HEAP RETAINED False", off.Heap);                              // the switch is honoured
        Assert.Equal("HEAP RETAINED False", chosen.Heap);                           // and so is the process's own choice
        Assert.Equal(13, kept.Result.Length);                                       // 12 losses and the model digest
        Assert.Equal(kept.Result, off.Result);
        Assert.Equal(kept.Result, chosen.Result);
    }
}
