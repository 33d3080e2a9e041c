using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The scoring encoder's own 16-chunk hash (<see cref="ScoringSignHash"/>) against the general kernel
/// (<see cref="SignHashKernel.HashRow"/>) with the same switches: the same rows and weight bits, token by token.</summary>
public class ScoringSignHashTests
{
    // τ = 8 (the Q/K/V and ML₁ hash: straight transposes), 10 (ML₂'s τ + 2: transposes and gathers), 4, 12 and 16; both weight functions.
    [SkippableTheory]
    [InlineData(8, true, 1f)]
    [InlineData(8, false, 0.7f)]
    [InlineData(10, true, 1f)]
    [InlineData(10, false, 1.5f)]
    [InlineData(4, true, 1f)]
    [InlineData(12, false, 2f)]
    [InlineData(16, true, 1f)]
    public unsafe void Rows_and_weights_are_the_bits_of_the_general_kernel(int bits, bool l1Scaled, float t)
    {
        Skip.IfNot(Avx512F.IsSupported, "no AVX-512: the scoring hash does not apply");
        KernelSettings.Current.With(s => s.WideInferenceHash = true, () =>
        {
            Assert.True(ScoringSignHash.Applies(16, bits));
            const int tokens = 300, k = 16;
            int d = k * bits;
            var random = new Random(bits * 10 + (l1Scaled ? 1 : 0));
            var x = Enumerable.Range(0, tokens * d).Select(_ => (float)((random.NextDouble() * 2) - 1) * 3).ToArray();
            x[0] = 0f; x[1] = -0f; x[d + 2] = 60f; x[(2 * d) + 3] = -45f; x[(3 * d) + 4] = float.NaN; x[(4 * d) + 5] = 1e-30f; x[(5 * d) + 6] = -1e-40f;
            Array.Clear(x, 6 * d, d);                                            // a row of zeros
            for (int i = 7 * d; i < 8 * d; i++) x[i] = -0f;                      // a row of negative zeros
            float scale = -2f / (l1Scaled ? 1f : t);
            var (rows, weights) = (new long[tokens * k], new float[tokens * k]);
            var (index, direct) = (new int[tokens * k], new float[tokens * k]);
            fixed (float* px = x, pw = weights, pd = direct)
            fixed (long* pr = rows)
            fixed (int* pi = index)
                for (int n = 0; n < tokens; n++)
                {
                    SignHashKernel.HashRow(px + (n * d), k, bits, l1Scaled, scale, pr + (n * k), pw + (n * k), null);
                    ScoringSignHash.Hash(px + (n * d), bits, l1Scaled, scale, pi + (n * k), pd + (n * k));
                }
            Assert.Equal(rows.Select(r => (int)r), index);
            Assert.Equal(weights.Select(BitConverter.SingleToInt32Bits), direct.Select(BitConverter.SingleToInt32Bits));
            Assert.Contains(weights, float.IsNaN);
            Assert.Contains(index, r => r % (1 << bits) == (1 << bits) - 1); // codes with every bit set (rows of zeros)
        });
    }

    [Fact]
    public void It_applies_only_with_the_switches_it_reproduces()
    {
        KernelSettings.Current.With(s => s.ScoringSignHash = false, () => Assert.False(ScoringSignHash.Applies(16, 8)));
        KernelSettings.Current.With(s => s.ScaledExp = false, () => Assert.False(ScoringSignHash.Applies(16, 8)));
        KernelSettings.Current.With(s => s.LeanWideHash = false, () => Assert.False(ScoringSignHash.Applies(16, 10)));
        Assert.False(ScoringSignHash.Applies(32, 8));
        Assert.False(ScoringSignHash.Applies(16, 17));
        KernelSettings.Current.With(s => s.WideInferenceHash = true, () => Assert.Equal(Avx512F.IsSupported, ScoringSignHash.Applies(16, 8)));
    }
}
