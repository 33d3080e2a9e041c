using Microsoft.ML.MemoryFormer.Layers;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers;

public class RotaryEmbeddingTests
{
    [Theory]
    [InlineData(4, 6, 0)]
    [InlineData(4, 6, 5)]     // positions continue after a cached prefix
    [InlineData(8, 8, 2)]     // the whole head rotated
    public void Rotation_equals_the_rotate_half_formula(int rotaryDims, int headWidth, int offset)
    {
        const double @base = 10000;
        using var rotary = new RotaryEmbedding(rotaryDims, maxPositions: 12, @base);
        var x = randn(2, 3, 4, headWidth);                                    // [B, H, T, hd]
        var y = rotary.Apply(x, offset).data<float>().ToArray();
        var xs = x.data<float>().ToArray();
        int half = rotaryDims / 2;
        for (int row = 0; row < 2 * 3 * 4; row++)
        {
            int position = offset + (row % 4);
            int o = row * headWidth;
            for (int i = 0; i < half; i++)
            {
                // pair (i, i + r/2) turns by position · base^(−2i/r), GPT-NeoX's rotate-half layout
                double angle = position * Math.Pow(@base, -2.0 * i / rotaryDims);
                double a = xs[o + i], b = xs[o + i + half];
                Assert.Equal((a * Math.Cos(angle)) - (b * Math.Sin(angle)), y[o + i], 1e-5);
                Assert.Equal((b * Math.Cos(angle)) + (a * Math.Sin(angle)), y[o + i + half], 1e-5);
            }
            for (int i = rotaryDims; i < headWidth; i++)
                Assert.Equal(xs[o + i], y[o + i]);                             // the rest of the head passes through
        }
    }

    [Fact]
    public void Zero_rotary_dims_leave_the_input_unchanged()
    {
        using var rotary = new RotaryEmbedding(0, maxPositions: 4, 10000);
        var x = randn(1, 2, 3, 8);
        Assert.True(rotary.Apply(x, 1).eq(x).all().item<bool>());
    }
}
