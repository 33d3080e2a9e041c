using Microsoft.ML.MemoryFormer.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

public class HeadGemvTests
{
    [Theory]
    [InlineData(1, 37, 1001)]
    [InlineData(3, 64, 50304)]
    [InlineData(1, 1024, 5003)]    // the 4-row AVX-512 loop, a vocabulary that is not a multiple of 4 or of a block
    [InlineData(2, 48, 4099)]
    public void Logits_equal_the_linear_layer(int rows, int width, int vocabulary)
    {
        var gen = new Generator(9);
        var x = randn([rows, width], generator: gen);
        var weight = randn([vocabulary, width], generator: gen);
        using var noGrad = no_grad();
        Assert.True(HeadGemv.Applies(x, weight));
        Assert.True(allclose(HeadGemv.Apply(x, weight), nn.functional.linear(x, weight), 1e-4, 1e-4));
    }
}
