using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The row pass's own horizontal sum (<see cref="RowGradientKernel.TreeSum"/>) is the bits of
/// <see cref="Vector512.Sum{T}(Vector512{T})"/>, so every hit's weight-gradient dot is unchanged by it.
/// </summary>
public class RowGradientKernelTests
{
    [Fact]
    public void Tree_sum_is_the_bits_of_the_runtime_sum_on_values_of_every_scale_and_sign()
    {
        var rng = new Random(16);
        var lanes = new float[16];
        int differentFromSequential = 0;
        for (int trial = 0; trial < 20000; trial++)
        {
            for (int i = 0; i < lanes.Length; i++)
                lanes[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-30, 30)));
            var v = Vector512.Create(lanes);
            float expected = Vector512.Sum(v), actual = RowGradientKernel.TreeSum(v);
            Assert.Equal(BitConverter.SingleToUInt32Bits(expected), BitConverter.SingleToUInt32Bits(actual));
            float sequential = 0f;
            foreach (float x in lanes)
                sequential += x;
            if (sequential != expected)
                differentFromSequential++;
        }

        Assert.True(differentFromSequential > 1000, "the values must be spread enough for the summation order to show");
    }
}
