using Microsoft.ML.MemoryFormer.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

public class HeadGemvTests
{
    [Theory]
    [InlineData(1, 37, 1001)]
    [InlineData(3, 64, 50304)]
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
