using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The scoring attention's keys padded to a multiple of 16 (<see cref="KernelSettings.ShortKeyTiles"/>) against
/// padding to 32: the same bits, on the parallel run and window by window, and in a model's scores.</summary>
public class WindowAttentionKeyTileTests
{
    /// <summary>Lengths on both sides of every 16-key boundary the change moves (L mod 32 in 1 … 16 pads 16 fewer keys).</summary>
    private static readonly int[] Lengths = [1, 5, 15, 16, 17, 31, 32, 33, 47, 48, 49, 100, 112, 113, 127, 128];

    private static unsafe float[] Attention(bool shortTiles, int heads, int headWidth, bool windowByWindow)
    {
        int n = Lengths.Sum(), width = heads * headWidth;
        var random = new Random(5);
        var inputs = Enumerable.Range(0, 3 * n * width).Select(_ => (float)((random.NextDouble() * 4) - 2)).ToArray();
        var starts = new int[Lengths.Length + 1];
        for (int w = 0; w < Lengths.Length; w++) starts[w + 1] = starts[w] + Lengths[w];
        var output = new float[n * width];
        var scratch = new float[WindowAttention.ScratchFloats(headWidth, Lengths.Max())];
        KernelSettings.Current.With(s => s.ShortKeyTiles = shortTiles, () =>
        {
            fixed (float* x = inputs, y = output, s = scratch)
            {
                float* q = x, k = x + (n * width), v = x + (2 * n * width);
                if (!windowByWindow)
                    WindowAttention.Run(q, k, v, y, heads, headWidth, starts);
                else
                    for (int w = 0; w < Lengths.Length; w++)
                        WindowAttention.Window(q, k, v, y, heads, headWidth, starts[w], Lengths[w], s);
            }
        });
        return output;
    }

    [Theory]
    [InlineData(4, 32, false)]
    [InlineData(4, 32, true)]
    [InlineData(2, 64, false)]
    [InlineData(1, 8, true)]                                                   // the 256-bit kernel: 32-key tiles either way
    public void Keys_padded_to_16_give_the_bits_of_keys_padded_to_32(int heads, int headWidth, bool windowByWindow)
    {
        var expected = Attention(false, heads, headWidth, windowByWindow);
        Assert.Contains(expected, v => v != 0f);
        Assert.Equal(expected, Attention(true, heads, headWidth, windowByWindow));
    }

    [SkippableFact]
    public void The_machine_takes_the_short_tiles_by_default()
    {
        // On an AVX-512 machine (the project's) the theory above compares two code paths, not one path with itself.
        Skip.IfNot(Vector512.IsHardwareAccelerated, "no AVX-512: the 256-bit kernel pads to 32 either way");
        Assert.True(KernelSettings.Current.ShortKeyTiles);
    }

    [Fact]
    public void A_model_scores_the_same_bits_with_either_padding()
    {
        using var model = ScoringTestModels.Small(3, 11, 48);
        (string, string?)[] rows = [(string.Concat(Enumerable.Range(0, 40).Select(i => $"word{i} ")), null), ("short text", null), ("a pair", "of texts"), ("x", null)];
        float[][] padded32 = [];
        KernelSettings.Current.With(s => s.ShortKeyTiles = false, () => padded32 = model.LogProbabilities(rows));
        Assert.Equal(padded32, model.LogProbabilities(rows));
    }
}
