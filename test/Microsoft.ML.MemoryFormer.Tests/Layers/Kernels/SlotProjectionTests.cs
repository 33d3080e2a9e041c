using Microsoft.ML.MemoryFormer.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

public class SlotProjectionTests
{
    [Theory]
    [InlineData(64, 5, 16, 32)]
    [InlineData(7, 3, 8, 13)]                                                    // a width with a scalar tail
    public void The_projection_equals_einsum_and_a_rows_tokens_do_not_depend_on_the_batch(int rows, int slots, int terms, int width)
    {
        var gen = new Generator(4);
        var features = randn([rows, slots, terms], generator: gen).clamp_min(0);  // zeros too, as piecewise-linear codes have
        var projection = randn([slots, terms, width], generator: gen);
        using var noGrad = no_grad();
        Assert.True(SlotProjection.Serves(features, projection));
        var all = SlotProjection.Apply(features, projection);
        Assert.Equal(new long[] { rows, slots, width }, all.shape);
        Assert.True(allclose(all, einsum("bft,ftd->bfd", features, projection), 1e-5, 1e-5));
        for (int r = 0; r < rows; r += 3)
            Assert.Equal(all[r].data<float>().ToArray(), SlotProjection.Apply(features.narrow(0, r, 1), projection)[0].data<float>().ToArray());
        using var grad = enable_grad();
        Assert.False(SlotProjection.Serves(features, projection));
    }
}
