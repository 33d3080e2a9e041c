using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The inference gathers' prefetches: the fused encoder's bag sum asking for rows ahead and the next table's rows into L2
/// (<see cref="KernelSettings.PrefetchEncoderRows"/>, <see cref="EncoderKernels.BagSum"/>), and the decode gathers prefetching
/// into L2 instead of L1 (<see cref="KernelSettings.DecodePrefetchIntoL2"/>): hints only, so the same bytes as without them.
/// </summary>
public class InferencePrefetchTests
{
    [Theory]
    [InlineData(16, 16)]                                                 // one 16-column step: no prefetch pass
    [InlineData(32, 16)]                                                 // the 32-column pass first
    [InlineData(128, 16)]                                                // the scoring model's Q/K/V and ML₂ rows
    [InlineData(160, 16)]                                                // its ML₁ rows: 128 + one 32-column step
    [InlineData(256, 3)]                                                 // fewer hits than the prefetch distance
    public unsafe void The_encoder_bag_sum_gives_the_same_bytes_with_and_without_its_prefetches(int h, int k)
    {
        const int rowCount = 200, tokens = 4;
        var rng = new Random(h + k);
        var table = Enumerable.Range(0, rowCount * h).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var next = Enumerable.Range(0, rowCount * 64).Select(_ => (float)rng.NextDouble()).ToArray();
        var bias = Enumerable.Range(0, h).Select(_ => (float)rng.NextDouble()).ToArray();
        var rows = Enumerable.Range(0, tokens * k).Select(_ => rng.Next(rowCount)).ToArray();
        var weights = Enumerable.Range(0, tokens * k).Select(_ => (float)rng.NextDouble()).ToArray();
        var plain = new float[tokens * h];
        var ahead = new float[tokens * h];
        var both = new float[tokens * h];
        fixed (float* t = table, n = next, b = bias, w = weights, p = plain, a = ahead, q = both)
        fixed (int* r = rows)
        {
            for (int i = 0; i < tokens; i++)
            {
                EncoderKernels.BagSum(t, h, r + (i * k), w + (i * k), k, p + (i * h), b);
                EncoderKernels.BagSum(t, h, r + (i * k), w + (i * k), k, a + (i * h), b, RowKernels.GatherPrefetchAhead);
                EncoderKernels.BagSum(t, h, r + (i * k), w + (i * k), k, q + (i * h), b, RowKernels.GatherPrefetchAhead, n, 64);
            }
        }
        Assert.True(plain.AsSpan().SequenceEqual(ahead), "the prefetch ahead changed a value");
        Assert.True(plain.AsSpan().SequenceEqual(both), "the next table's prefetch changed a value");
        Assert.Contains(plain, v => v != 0f);
    }

    [Theory]
    [InlineData(512)]
    [InlineData(256)]
    [InlineData(0)]
    public unsafe void The_decode_gathers_give_the_same_bytes_prefetching_into_L1_or_L2(int vectorBits)
    {
        const int h = 1024 + 96, rowCount = 300, k = 24;                  // a 128-column tile pass and tails
        var rng = new Random(vectorBits + 1);
        var table16 = Enumerable.Range(0, rowCount * h).Select(_ => (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() - 0.5)) >> 16)).ToArray();
        var table8 = Enumerable.Range(0, rowCount * h).Select(_ => (sbyte)rng.Next(-127, 128)).ToArray();
        var scales = Enumerable.Range(0, rowCount).Select(_ => (float)rng.NextDouble() / 127f).ToArray();
        var rows = Enumerable.Range(0, k).Select(_ => rng.Next(rowCount)).ToArray();
        var weights = Enumerable.Range(0, k).Select(_ => (float)rng.NextDouble()).ToArray();
        float[] Run(bool intoL2, bool int8)
        {
            var output = new float[h];
            KernelSettings.Current.With(s => s.DecodePrefetchIntoL2 = intoL2, () =>
            {
                fixed (ushort* t = table16)
                fixed (sbyte* q = table8)
                fixed (float* s = scales, w = weights, d = output)
                fixed (int* r = rows)
                {
                    if (int8) Int8Gather.WeightedBagSum(q, s, h, r, w, k, d, vectorBits);
                    else Bf16Gather.WeightedBagSum(t, h, r, w, k, d, vectorBits);
                }
            });
            return output;
        }
        foreach (bool int8 in new[] { false, true })
        {
            var l1 = Run(intoL2: false, int8);
            Assert.True(l1.AsSpan().SequenceEqual(Run(intoL2: true, int8)), int8 ? "int8: the L2 prefetch changed a value" : "bf16: the L2 prefetch changed a value");
            Assert.Contains(l1, v => v != 0f);
        }
    }
}
