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

    [Theory]
    [InlineData(300, 48, 77)]      // a task head: rows shared by the workers
    [InlineData(9, 64, 5003)]      // a weight above one block: vocabulary blocks shared
    public void A_heads_rows_do_not_depend_on_the_batch_and_equal_the_linear_layer(int rows, int width, int outputs)
    {
        var gen = new Generator(3);
        var x = randn([rows, width], generator: gen);
        var weight = randn([outputs, width], generator: gen);
        var bias = randn([outputs], generator: gen);
        using var noGrad = no_grad();
        Assert.True(HeadGemv.ServesRows(x, weight));
        var all = HeadGemv.Linear(x, weight, bias);
        Assert.True(allclose(all, nn.functional.linear(x, weight, bias), 1e-4, 1e-4));
        for (int r = 0; r < rows; r += 4)                                        // one row alone: the same bits as in the batch
            Assert.Equal(all[r].data<float>().ToArray(), HeadGemv.Linear(x.narrow(0, r, 1), weight, bias)[0].data<float>().ToArray());
        using var grad = enable_grad();
        Assert.False(HeadGemv.ServesRows(x, weight));                            // training keeps nn.Linear
    }
}
