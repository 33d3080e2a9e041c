using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The scoring attention's lean softmax (<see cref="KernelSettings.LeanSoftmax"/>: the row max with <c>vmaxps</c> in two
/// chains, <see cref="WindowAttention.LeanExp512"/>) against the softmax before it: the same bits, exp by exp, window by window and
/// in a model's scores.</summary>
public class WindowAttentionSoftmaxTests
{
    /// <summary>Every x the softmax and the hash feed the exp (x ≤ 0) at the edges: zeros of both signs, −∞, the underflow mask's
    /// bound and its neighbours, rounding ties of x·log₂e, subnormal results, and a dense random sweep.</summary>
    private static float[] ExpInputs()
    {
        var random = new Random(11);
        var edges = new List<float> { 0f, -0f, float.NegativeInfinity, -87.33654f, BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(-87.33654f) + 1),
            BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(-87.33654f) - 1), -88f, -103f, -150f, -1e30f, -float.Epsilon, -1e-30f };
        for (int i = 1; i <= 253; i++)
            edges.Add(-i * 0.5f / 1.44269504f);                                  // x·log₂e near the ties n + ½
        edges.AddRange(Enumerable.Range(0, 20_000).Select(_ => (float)(-random.NextDouble() * 100)));
        edges.AddRange(Enumerable.Range(0, 4_000).Select(_ => (float)(-random.NextDouble() * 2)));
        while (edges.Count % 16 != 0) edges.Add(-1f);
        return [.. edges];
    }

    [SkippableFact]
    public unsafe void The_lean_exp_gives_the_bits_of_the_exp_before_it()
    {
        Skip.IfNot(Vector512.IsHardwareAccelerated, "no AVX-512: the 512-bit exp is not used");
        var x = ExpInputs();
        var (before, lean) = (new float[x.Length], new float[x.Length]);
        fixed (float* p = x, b = before, l = lean)
            for (int i = 0; i < x.Length; i += 16)
            {
                WindowAttention.Exp512(Vector512.Load(p + i)).Store(b + i);
                WindowAttention.LeanExp512(Vector512.Load(p + i)).Store(l + i);
            }
        Assert.Contains(before, v => v > 0f && v < 1f);
        Assert.Equal(before.Select(BitConverter.SingleToInt32Bits), lean.Select(BitConverter.SingleToInt32Bits));
    }

    private static readonly int[] Lengths = [1, 2, 7, 16, 17, 31, 32, 33, 64, 65, 95, 112, 127, 128];

    private static unsafe float[] Attention(bool lean, float spread, int together = 4)
    {
        const int heads = 4, headWidth = 32, width = heads * headWidth;
        int n = Lengths.Sum();
        var random = new Random(7);
        var inputs = Enumerable.Range(0, 3 * n * width).Select(_ => (float)((random.NextDouble() * 2) - 1) * spread).ToArray();
        var starts = new int[Lengths.Length + 1];
        for (int w = 0; w < Lengths.Length; w++) starts[w + 1] = starts[w] + Lengths[w];
        var output = new float[n * width];
        var scratch = new float[WindowAttention.ScratchFloats(headWidth, Lengths.Max())];
        KernelSettings.Current.With(s => (s.LeanSoftmax, s.SoftmaxRows) = (lean, together), () =>
        {
            fixed (float* x = inputs, y = output, s = scratch)
                for (int w = 0; w < Lengths.Length; w++)
                    WindowAttention.Window(x, x + (n * width), x + (2 * n * width), y, heads, headWidth, starts[w], Lengths[w], s);
        });
        return output;
    }

    [Theory]
    [InlineData(1f)]
    [InlineData(6f)]                                                           // scores far apart: exps that underflow to 0
    public void Attention_with_the_lean_softmax_gives_the_same_bits(float spread)
    {
        var before = Attention(false, spread);
        Assert.Contains(before, v => v != 0f);
        Assert.Equal(before, Attention(true, spread));
        Assert.Equal(before, Attention(true, spread, together: 2));
        Assert.Equal(before, Attention(true, spread, together: 1));
    }

    [Fact]
    public void A_model_scores_the_same_bits_with_every_s18_switch_off()
    {
        using var model = ScoringTestModels.Small(3, 11, 48);
        (string, string?)[] rows = [(string.Concat(Enumerable.Range(0, 60).Select(i => $"word{i % 17} ")), null), ("short text", null), ("a pair", "of texts")];
        float[][] before = [];
        KernelSettings.Current.With(s => (s.LeanSoftmax, s.SoftmaxRows, s.FusedQkvBags, s.WideInferenceHash, s.LeanWideHash, s.PairedTokens) = (false, 1, false, false, false, false), () => before = model.LogProbabilities(rows));
        Assert.Equal(before, model.LogProbabilities(rows));
        model.UseInferencePrecision(MemoryFormer.Configuration.InferencePrecision.BFloat16);      // the bf16 tables' one-walk Q/K/V too
        KernelSettings.Current.With(s => (s.LeanSoftmax, s.SoftmaxRows, s.FusedQkvBags, s.WideInferenceHash, s.LeanWideHash, s.PairedTokens) = (false, 1, false, false, false, false), () => before = model.LogProbabilities(rows));
        Assert.Equal(before, model.LogProbabilities(rows));
    }
}
