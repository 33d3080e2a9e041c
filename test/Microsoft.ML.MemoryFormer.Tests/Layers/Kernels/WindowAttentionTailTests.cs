using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The scoring attention's window tails (<see cref="KernelSettings.AttentionTails"/>: padded scores masked by one blended store a
/// row, a short last group as four queries, the key tail transposed as one more tile) against the kernel before: the same bits for every
/// window length 1 … 130, keys padded to 16 and to 32, on the parallel run and window by window, and in a model's scores.</summary>
public class WindowAttentionTailTests
{
    private static readonly int[] Lengths = Enumerable.Range(1, 130).ToArray();

    private static unsafe int[] AttentionBits(bool tails, bool shortTiles, int heads, int headWidth, bool windowByWindow, bool rowMax = true)
    {
        int n = Lengths.Sum(), width = heads * headWidth;
        var random = new Random(7);
        var inputs = Enumerable.Range(0, 3 * n * width).Select(_ => (float)((random.NextDouble() * 6) - 3)).ToArray();
        var starts = new int[Lengths.Length + 1];
        for (int w = 0; w < Lengths.Length; w++) starts[w + 1] = starts[w] + Lengths[w];
        var output = new float[n * width];
        var scratch = new float[WindowAttention.ScratchFloats(headWidth, Lengths.Max())];
        Array.Fill(scratch, float.NaN);                                          // padding must not leak into a result
        KernelSettings.Current.With(s => (s.AttentionTails, s.ShortKeyTiles, s.ScoresRowMax) = (tails, shortTiles, rowMax), () =>
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
        return output.Select(BitConverter.SingleToInt32Bits).ToArray();
    }

    [Theory]
    [InlineData(4, 32, true, false)]
    [InlineData(4, 32, true, true)]
    [InlineData(4, 32, false, true)]                                           // keys padded to 32: up to two masked vectors a row
    [InlineData(2, 64, true, false)]
    [InlineData(1, 8, true, true)]                                             // the 256-bit kernel: only the key tail changes
    public void The_window_tails_give_the_bits_of_the_kernel_before(int heads, int headWidth, bool shortTiles, bool windowByWindow)
    {
        var before = AttentionBits(false, shortTiles, heads, headWidth, windowByWindow);
        Assert.Contains(before, b => b != 0);
        Assert.DoesNotContain(before, b => float.IsNaN(BitConverter.Int32BitsToSingle(b)));
        Assert.Equal(before, AttentionBits(true, shortTiles, heads, headWidth, windowByWindow));
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, true)]
    public void The_row_max_taken_with_the_scores_gives_the_bits_of_the_softmax_pass(bool shortTiles, bool windowByWindow)
    {
        var softmaxPass = AttentionBits(true, shortTiles, 4, 32, windowByWindow, rowMax: false);
        Assert.Contains(softmaxPass, b => b != 0);
        Assert.Equal(softmaxPass, AttentionBits(true, shortTiles, 4, 32, windowByWindow, rowMax: true));
        Assert.Equal(AttentionBits(false, shortTiles, 4, 32, windowByWindow), softmaxPass);
    }

    [SkippableFact]
    public void The_tails_are_on_by_default_where_the_kernel_takes_them()
    {
        Skip.IfNot(Vector512.IsHardwareAccelerated, "no AVX-512: only the key tail's path is compared");
        Assert.True(KernelSettings.Current.AttentionTails);
        Assert.True(KernelSettings.Current.ScoresRowMax);
    }

    [Fact]
    public void A_model_scores_the_same_bits_with_the_tails_off()
    {
        using var model = ScoringTestModels.Small(3, 11, 48);
        (string, string?)[] rows = [(string.Concat(Enumerable.Range(0, 40).Select(i => $"word{i} ")), null), ("short text", null), ("a pair", "of texts"), ("x", null)];
        float[][] before = [];
        KernelSettings.Current.With(s => (s.AttentionTails, s.ScoresRowMax) = (false, false), () => before = model.LogProbabilities(rows));
        var after = model.LogProbabilities(rows);
        Assert.Equal(before.SelectMany(r => r.Select(BitConverter.SingleToInt32Bits)), after.SelectMany(r => r.Select(BitConverter.SingleToInt32Bits)));
    }
}
