using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>
/// <see cref="KernelSettings.ReuseKernelBuffers"/>: training on the kernels' reused blocks (<see cref="KernelBuffers"/>)
/// gives the bits of training on fresh torch tensors, for both model kinds, and the blocks are really used.
/// </summary>
public class KernelBufferTrainingTests
{
    /// <summary>Five steps of a small model (d = 64, 512 tokens a step: every kernel output ≥ 64 KB takes a block); every
    /// parameter's bytes and the losses.</summary>
    private static (byte[][] Parameters, IReadOnlyList<double> Losses) Train(TransformerKind kind, bool reuse)
        => SeededTraining.Run(k => k.ReuseKernelBuffers = reuse,
            MemoryFormerConfig.Nano with { Kind = kind, Width = 64, Heads = 2, BitsPerChunk = 8, Layers = 2, ContextLength = 32 },
            seed: 5, windowSeed: 4, batchSize: 16, new TrainingOptions { MaxSteps = 5, WarmupSteps = 1, ReportEvery = 1 });

    [Theory]
    [InlineData(TransformerKind.MemoryFormer)]
    [InlineData(TransformerKind.Dense)]                                     // its RMSNorm and rotary take blocks too
    public void Training_on_reused_blocks_gives_the_bits_of_fresh_tensors(TransformerKind kind)
    {
        var fresh = Train(kind, reuse: false);
        long made = KernelBuffers.TensorsMade;
        var reused = Train(kind, reuse: true);
        Assert.Equal(fresh.Losses, reused.Losses);
        Assert.Equal(fresh.Parameters.Length, reused.Parameters.Length);
        for (int i = 0; i < fresh.Parameters.Length; i++)
            Assert.True(fresh.Parameters[i].AsSpan().SequenceEqual(reused.Parameters[i]), $"parameter {i} differs");
        Assert.True(KernelBuffers.TensorsMade > made, "no kernel output came from a block");
    }
}
