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

    [SkippableFact]
    public unsafe void The_scaled_exp_gives_the_bits_of_the_lean_exp()
    {
        Skip.IfNot(Vector512.IsHardwareAccelerated, "no AVX-512: the 512-bit exp is not used");
        // The edges and sweep above, then every 61st float of [−88, 0] by bit pattern (subnormal results near the mask's bound included).
        var sweep = new List<float>(ExpInputs());
        for (int bits = BitConverter.SingleToInt32Bits(-0f); bits <= BitConverter.SingleToInt32Bits(-88f); bits += 61)
            sweep.Add(BitConverter.Int32BitsToSingle(bits));
        sweep.Add(float.NaN);
        while (sweep.Count % 16 != 0) sweep.Add(-0.5f);
        var x = sweep.ToArray();
        var (lean, scaled) = (new float[x.Length], new float[x.Length]);
        fixed (float* p = x, l = lean, s = scaled)
            for (int i = 0; i < x.Length; i += 16)
            {
                WindowAttention.LeanExp512(Vector512.Load(p + i), scaled: false).Store(l + i);
                WindowAttention.LeanExp512(Vector512.Load(p + i), scaled: true).Store(s + i);
            }
        Assert.True(x.Length > 15_000_000);
        Assert.Contains(lean, v => v > 0f && v < 1.5f * BitConverter.Int32BitsToSingle(0x00800000));          // results at the bottom of the normal range reached
        Assert.Equal(lean.Select(BitConverter.SingleToInt32Bits), scaled.Select(BitConverter.SingleToInt32Bits));
    }

    [Theory]
    [InlineData(1f)]
    [InlineData(6f)]
    public void Attention_with_the_scaled_exp_gives_the_same_bits(float spread)
    {
        float[] before = [];
        KernelSettings.Current.With(s => s.ScaledExp = false, () => before = Attention(true, spread));
        Assert.Contains(before, v => v != 0f);
        Assert.Equal(before, Attention(true, spread));
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
        KernelSettings.Current.With(s => (s.LeanSoftmax, s.SoftmaxRows, s.FusedQkvBags, s.WideInferenceHash, s.LeanWideHash, s.PairedTokens, s.ScaledExp, s.ScoringSignHash, s.PairedLayerNorm) = (false, 1, false, false, false, false, false, false, false), () => before = model.LogProbabilities(rows));
        Assert.Equal(before, model.LogProbabilities(rows));
        model.UseInferencePrecision(MemoryFormer.Configuration.InferencePrecision.BFloat16);      // the bf16 tables' one-walk Q/K/V too
        KernelSettings.Current.With(s => (s.LeanSoftmax, s.SoftmaxRows, s.FusedQkvBags, s.WideInferenceHash, s.LeanWideHash, s.PairedTokens, s.ScaledExp, s.ScoringSignHash, s.PairedLayerNorm) = (false, 1, false, false, false, false, false, false, false), () => before = model.LogProbabilities(rows));
        Assert.Equal(before, model.LogProbabilities(rows));
    }
}
