using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The row pass's batched hit sums (<see cref="HitSums"/>, <see cref="KernelSettings.BatchedHitSums"/>): each lane is the bits of
/// <see cref="RowGradientKernel.TreeSum"/> of its vector, and the row kernel gives the same table and weight gradients with the batches
/// as without, for hit counts around whole batches of sixteen (rows of 16 or more hits take the batched 128-column loop, the others
/// the one-tree loop either way) and widths with 128-, 32-column and scalar tails.
/// </summary>
public class HitSumsTests
{
    [SkippableFact]
    public unsafe void Each_lane_is_the_bits_of_the_tree_sum_of_its_vector()
    {
        Skip.IfNot(HitSums.IsAccelerated, "Needs AVX-512.");
        var rng = new Random(17);
        var vectors = stackalloc Vector512<float>[16];
        var lanes = new float[16];
        for (int trial = 0; trial < 2000; trial++)
        {
            for (int v = 0; v < 16; v++)
            {
                for (int i = 0; i < 16; i++)
                    lanes[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-30, 30)));
                vectors[v] = Vector512.Create(lanes);
            }
            var sums = HitSums.Sum16(vectors);
            for (int v = 0; v < 16; v++)
                Assert.Equal(BitConverter.SingleToUInt32Bits(RowGradientKernel.TreeSum(vectors[v])), BitConverter.SingleToUInt32Bits(sums.GetElement(v)));
        }
    }

    [SkippableTheory]
    [InlineData(512)]
    [InlineData(165)]                                                             // 128 + 32 + 5: every tail
    public unsafe void The_row_kernel_gives_the_same_bits_with_and_without_batches(int h)
    {
        Skip.IfNot(HitSums.IsAccelerated, "Needs AVX-512.");
        const int n = 64;
        var rng = new Random(h);
        float[] Random(int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() - 0.5) * (float)Math.Pow(2, rng.Next(-8, 8))).ToArray();
        float[] row = Random(h), grad = Random(n * h), weights = Random(n);
        int[] tokens = Enumerable.Range(0, n).Select(_ => rng.Next(n)).ToArray();
        int[] pairs = Enumerable.Range(0, n).ToArray();
        foreach (int count in new[] { 0, 1, 15, 16, 17, 31, 32, 33, 64 })
        {
            var (gradOn, dotsOn, normOn) = Run(true);
            var (gradOff, dotsOff, normOff) = Run(false);
            Assert.True(gradOn.AsSpan().SequenceEqual(gradOff), $"table gradient row differs at {count} hits");
            Assert.True(dotsOn.AsSpan().SequenceEqual(dotsOff), $"weight gradient differs at {count} hits");
            Assert.Equal(BitConverter.SingleToUInt32Bits(normOff), BitConverter.SingleToUInt32Bits(normOn));

            (float[] Dst, float[] Gw, float Norm) Run(bool batched)
            {
                var dst = new float[h];
                var gw = Enumerable.Repeat(0.25f, n).ToArray();                  // added to, as the row pass's other tiles and tables do
                float norm = 0;
                KernelSettings.Current.With(k => k.BatchedHitSums = batched, () =>
                {
                    fixed (float* r = row, g = grad, w = weights, d = dst, dw = gw)
                    fixed (int* t = tokens, p = pairs)
                        norm = RowGradientKernel.Run(r, g, h, t, p, w, count, d, dw, cached: true);
                });
                return (dst, gw, norm);
            }
        }
    }
}
