using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.MemoryFormer.Tests.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The training kernels' prefetches into L2: the token-major forward gather's rows (<see cref="KernelSettings.PrefetchGatherRows"/>,
/// <see cref="RowKernels.WeightedBagSumPrefetched"/>, and over bf16 table copies <see cref="EncoderKernels.BagSumBf16"/>) and the fused update's table and moment rows (<see cref="KernelSettings.PrefetchUpdateRows"/>):
/// hints only, so the same bytes as without them, kernel by kernel and over training steps.
/// </summary>
public class GatherPrefetchTests
{
    [Theory]
    [InlineData(16, 8)]                                                  // below 256 columns: the plain kernel
    [InlineData(256, 8)]
    [InlineData(320, 8)]                                                 // 256 + a 64-column AVX2 tail
    [InlineData(512, 3)]                                                 // fewer hits than the prefetch distance
    [InlineData(640, 16)]
    public unsafe void The_prefetching_kernel_gives_the_plain_kernels_bytes(int h, int k)
    {
        const int rowCount = 200, tokens = 5;
        var rng = new Random(h + k);
        var table = Enumerable.Range(0, rowCount * h).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var bias = Enumerable.Range(0, h).Select(_ => (float)rng.NextDouble()).ToArray();
        var rows = Enumerable.Range(0, tokens * k).Select(_ => rng.Next(rowCount)).ToArray();
        var weights = Enumerable.Range(0, tokens * k).Select(_ => (float)rng.NextDouble()).ToArray();
        var plain = new float[tokens * h];
        var prefetched = new float[tokens * h];
        fixed (float* t = table, b = bias, w = weights, p = plain, q = prefetched)
        fixed (int* r = rows)
        {
            for (int i = 0; i < tokens; i++)
            {
                float* init = i % 2 == 0 ? b : null;
                RowKernels.WeightedBagSum(t, h, r + (i * k), w + (i * k), k, p + (i * h), init);
                // The next token's rows visible to the prefetch, as the forward passes them, except after the last token.
                RowKernels.WeightedBagSumPrefetched(t, h, r + (i * k), w + (i * k), k, q + (i * h), init, RowKernels.GatherPrefetchAhead,
                    i + 1 < tokens ? 2 * k : k);
            }
        }
        Assert.True(plain.AsSpan().SequenceEqual(prefetched), "the prefetching kernel changed a value");
        Assert.Contains(plain, v => v != 0f);
    }

    [Theory]
    [InlineData(160)]                                                    // 128 + one 32-column step
    [InlineData(512)]
    public unsafe void The_bf16_kernel_gives_the_same_bytes_with_and_without_its_prefetch(int h)
    {
        const int rowCount = 100, tokens = 4, k = 12;
        var rng = new Random(h);
        var table = Enumerable.Range(0, rowCount * h).Select(_ => (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() - 0.5)) >> 16)).ToArray();
        var bias = Enumerable.Range(0, h).Select(_ => (float)rng.NextDouble()).ToArray();
        var rows = Enumerable.Range(0, tokens * k).Select(_ => rng.Next(rowCount)).ToArray();
        var weights = Enumerable.Range(0, tokens * k).Select(_ => (float)rng.NextDouble()).ToArray();
        var plain = new float[tokens * h];
        var prefetched = new float[tokens * h];
        fixed (ushort* t = table)
        fixed (float* b = bias, w = weights, p = plain, q = prefetched)
        fixed (int* r = rows)
        {
            for (int i = 0; i < tokens; i++)
            {
                EncoderKernels.BagSumBf16(t, h, r + (i * k), w + (i * k), k, p + (i * h), b);
                EncoderKernels.BagSumBf16(t, h, r + (i * k), w + (i * k), k, q + (i * h), b, RowKernels.GatherPrefetchAhead, i + 1 < tokens ? 2 * k : k);
            }
        }
        Assert.True(plain.AsSpan().SequenceEqual(prefetched), "the prefetch changed a value");
        Assert.Contains(plain, v => v != 0f);
    }

    [Fact]
    public void The_fused_gather_gives_the_same_bytes_with_and_without_the_prefetch()
    {
        using var scope = NewDisposeScope();
        const int n = 96, k = 4, bits = 4, h = 512;                     // 64 rows of 2 KB: small, so the token-major kernel runs
        var gen = new Generator(5);
        var rows = randint(0, 1 << bits, [n, k], dtype: ScalarType.Int64, generator: gen) + (arange(k, dtype: ScalarType.Int64) * (1 << bits)).unsqueeze(0);
        var weights = rand([n, k], generator: gen);
        var table = randn([k << bits, h], generator: gen) * 0.02f;
        var bias = randn([h], generator: gen);
        var upstream = randn([n, h], generator: gen);

        Tensor[] Run(bool prefetch)
        {
            Tensor[] result = [];
            KernelSettings.Current.With(s =>
            {
                s.PrefetchGatherRows = prefetch;
                s.TiledForward = false;
            }, () =>
            {
                var w = weights.detach().clone().requires_grad_(true);
                var t = table.detach().clone().requires_grad_(true);
                var b = bias.detach().clone().requires_grad_(true);
                var y = FusedMemoryGather.ApplyMany(rows, w, [t], biases: [b]);
                autograd.backward(y, [upstream]);
                result = [y[0].detach(), w.grad!, t.grad!, b.grad!];
            });
            return result;
        }
        var before = Run(prefetch: false);
        var after = Run(prefetch: true);
        for (int i = 0; i < before.Length; i++)
            Assert.True(before[i].bytes.ToArray().AsSpan().SequenceEqual(after[i].bytes.ToArray()), $"tensor {i} differs");
        Assert.True(before[0].abs().sum().item<float>() > 0f);
    }

    [Theory]
    [InlineData(MomentPrecision.Float32, false)]
    [InlineData(MomentPrecision.BFloat16, false)]
    [InlineData(MomentPrecision.BFloat16, true)]                          // mixed precision: the forward reads bf16 table copies
    public void Training_steps_give_the_same_bytes_with_and_without_both_prefetches(MomentPrecision moments, bool bf16Tables)
    {
        var off = Train(prefetch: false, moments, bf16Tables);
        var on = Train(prefetch: true, moments, bf16Tables);
        Assert.Equal(off.Losses, on.Losses);
        Assert.Equal(off.Parameters.Length, on.Parameters.Length);
        for (int i = 0; i < off.Parameters.Length; i++)
            Assert.True(off.Parameters[i].AsSpan().SequenceEqual(on.Parameters[i]), $"parameter {i} differs");
    }

    /// <summary>Three steps of a d = 256 model (tables 256 and 320 wide, small: the token-major forward; PreviousStep clipping: the
    /// update fused into the row pass); every parameter's bytes and the losses.</summary>
    private static (byte[][] Parameters, IReadOnlyList<double> Losses) Train(bool prefetch, MomentPrecision moments, bool bf16Tables)
        => SeededTraining.Run(k =>
            {
                k.PrefetchGatherRows = k.PrefetchUpdateRows = prefetch;
                k.Bf16ForwardTables = bf16Tables;
            },
            MemoryFormerConfig.Nano with { Width = 256, Heads = 2, BitsPerChunk = 4, Layers = 1, ContextLength = 16 }, seed: 4, windowSeed: 3, batchSize: 8,
            new TrainingOptions
            {
                MaxSteps = 3, WarmupSteps = 1, ReportEvery = 1, TableGradientClipping = TableGradientClipping.PreviousStep, TableMomentPrecision = moments,
            });
}
