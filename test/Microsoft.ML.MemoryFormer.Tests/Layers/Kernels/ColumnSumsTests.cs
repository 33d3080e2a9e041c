using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.MemoryFormer.Tests.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The managed bias-gradient sums (<see cref="ColumnSums"/>, <see cref="KernelSettings.ManagedBiasSums"/>): libtorch's <c>sum(0)</c>
/// bits column by column, in the gather's backward and over training steps.
/// </summary>
public class ColumnSumsTests
{
    [Fact]
    public void This_processes_libtorch_adds_columns_in_the_order_the_kernel_reproduces() =>
        Assert.True(ColumnSums.MatchesTorch, "libtorch's sum(0) order differs from ColumnSums: every bias sum falls back to the torch op");

    [Theory]
    [InlineData(2048, 256)]                                              // d = 256: Q/K/V, ML₂
    [InlineData(2048, 320)]                                              // ML₁ at d = 256
    [InlineData(2048, 512)]
    [InlineData(1, 32)]
    [InlineData(15, 64)]                                                 // less than one 16-row run
    [InlineData(16, 32)]
    [InlineData(273, 96)]                                                // whole runs, a level carry and a partial run
    [InlineData(4097, 160)]                                              // 2^12 + 1 rows: all four levels
    [InlineData(70000, 32)]                                              // 2^(4·p) with p = 5 runs of 32 rows
    [InlineData(40, 2080)]                                               // two sweeps: 2048 columns, then 32
    public unsafe void Sums_give_torchs_bytes(int n, int h)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator((ulong)(n + h));
        var x = (randn([n, h], generator: gen) * exp(randn([n, h], generator: gen) * 3)).contiguous();
        x[0] = zeros(h) * -1f;                                            // a −0 row: a column of −0 must come out as torch's +0
        var expected = x.sum(0L);
        var actual = new float[h];
        fixed (float* a = actual)
            ColumnSums.Sum(TensorMemory.Floats(x), n, h, a);
        Assert.True(expected.bytes.ToArray().AsSpan().SequenceEqual(System.Runtime.InteropServices.MemoryMarshal.AsBytes(actual.AsSpan())),
            "a column sum differs from torch's");
        Assert.True(ColumnSums.Supports(h));
    }

    [Fact]
    public void A_width_that_is_not_a_multiple_of_32_keeps_the_torch_op() => Assert.False(ColumnSums.Supports(48));

    [Fact]
    public void The_fused_gathers_gradients_keep_their_bytes_with_the_managed_bias_sums()
    {
        using var scope = NewDisposeScope();
        const int n = 300, k = 4, bits = 4;
        var gen = new Generator(9);
        var rows = randint(0, 1 << bits, [n, k], dtype: ScalarType.Int64, generator: gen) + (arange(k, dtype: ScalarType.Int64) * (1 << bits)).unsqueeze(0);
        var weights = rand([n, k], generator: gen);
        var tables = new[] { randn([k << bits, 64], generator: gen), randn([k << bits, 64], generator: gen), randn([k << bits, 48], generator: gen) };
        var biases = tables.Select(t => randn([t.shape[1]], generator: gen)).ToArray();
        var upstream = tables.Select(t => randn([n, t.shape[1]], generator: gen) * 10f).ToArray();

        byte[][] Run(bool managed)
        {
            byte[][] result = [];
            KernelSettings.Current.With(s => s.ManagedBiasSums = managed, () =>
            {
                var w = weights.detach().clone().requires_grad_(true);
                var ts = tables.Select(t => t.detach().clone().requires_grad_(true)).ToArray();
                var bs = biases.Select(b => b.detach().clone().requires_grad_(true)).ToArray();
                var y = FusedMemoryGather.ApplyMany(rows, w, ts, biases: bs);
                autograd.backward(y, upstream);
                result = [.. y.Select(o => o.detach().bytes.ToArray()), w.grad!.bytes.ToArray(), .. ts.Select(t => t.grad!.bytes.ToArray()),
                    .. bs.Select(b => b.grad!.bytes.ToArray())];
            });
            return result;
        }
        var torchSums = Run(managed: false);
        var managedSums = Run(managed: true);
        Assert.Equal(torchSums.Length, managedSums.Length);
        for (int i = 0; i < torchSums.Length; i++)
            Assert.True(torchSums[i].AsSpan().SequenceEqual(managedSums[i]), $"tensor {i} differs");
        Assert.True(ColumnSums.Supports(64) && !ColumnSums.Supports(48));       // two tables took the kernel, one the torch op
    }

    [Fact]
    public void Training_steps_give_the_same_bytes_with_and_without_the_managed_bias_sums()
    {
        var off = Train(managed: false);
        var on = Train(managed: true);
        Assert.Equal(off.Losses, on.Losses);
        Assert.Equal(off.Parameters.Length, on.Parameters.Length);
        for (int i = 0; i < off.Parameters.Length; i++)
            Assert.True(off.Parameters[i].AsSpan().SequenceEqual(on.Parameters[i]), $"parameter {i} differs");
    }

    /// <summary>Three steps of a small model (tables 256 and 384 wide: every bias sum takes the kernel when on); every parameter's
    /// bytes and the losses.</summary>
    private static (byte[][] Parameters, IReadOnlyList<double> Losses) Train(bool managed)
        => SeededTraining.Run(k => k.ManagedBiasSums = managed, MemoryFormerConfig.Nano with { Width = 256, Heads = 2, BitsPerChunk = 4, Layers = 1, ContextLength = 16 },
            seed: 4, windowSeed: 3, batchSize: 8, new TrainingOptions { MaxSteps = 3, WarmupSteps = 1, ReportEvery = 1 });
}
