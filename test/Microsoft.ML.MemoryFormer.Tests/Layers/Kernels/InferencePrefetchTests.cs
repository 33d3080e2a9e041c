using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The decode gathers prefetching their rows into L2 instead of L1 (<see cref="KernelSettings.DecodePrefetchIntoL2"/>): hints only,
/// so the same bytes either way.
/// </summary>
public class InferencePrefetchTests
{
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
            KernelSettings.Current.With(k => k.DecodePrefetchIntoL2 = intoL2, () =>
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
