using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The fused scoring encoder's first-block projections shared per token id (the same bits) and its opt-in bf16
/// arithmetic (<see cref="TextClassifierModel.UseInferencePrecision"/>: <see cref="EncoderKernels.BagSumBf16"/>) against
/// fp32.</summary>
public class FusedEncoderPrecisionTests
{
    private static TextClassifierModel NewModel(int windowTokens = 128, int seed = 4) => ScoringTestModels.Small(5, seed, windowTokens);

    private static readonly (string, string?)[] LongRows =
    [
        (string.Concat(Enumerable.Range(0, 60).Select(i => $"word{i} and some more text {i * 7}; ")), null),
        ("short", null),
        (string.Concat(Enumerable.Range(0, 30).Select(i => $"another paragraph, line {i}. ")), null),
        ("a pair of texts", "whose second part is a little longer than the first"),
        (string.Concat(Enumerable.Range(0, 9).Select(i => $"the quick brown fox {i} jumps. ")), null),
    ];

    private static float[][] Score(TextClassifierModel model, bool share = true, int tokensPerBatch = 4096)
    {
        (model.ShareFirstProjections, model.ScoringTokensPerBatch, model.UseFusedScoring) = (share, tokensPerBatch, true);
        return model.LogProbabilities(LongRows);
    }

    [Fact]
    public void Shared_first_projections_give_the_per_token_scores_bit_for_bit()
    {
        using var model = NewModel();
        Assert.True(FusedEncoder.Supports(model.Network.Backbone));
        var perToken = Score(model, share: false);
        Assert.Equal(perToken, Score(model));
        // Small groups: rows made in one group are reused in later ones, and the group size moves no score.
        Assert.Equal(perToken, Score(model, share: false, tokensPerBatch: 300));
        Assert.Equal(perToken, Score(model, tokensPerBatch: 300));
    }

    [Fact]
    public void The_profile_counts_one_first_block_row_per_distinct_id_of_a_large_group()
    {
        using var model = NewModel();
        var windows = LongRows.SelectMany(r => model.Encode(r.Item1, r.Item2)).ToArray();
        int tokens = windows.Sum(w => w.Length), distinct = windows.SelectMany(w => w).Distinct().Count();
        Assert.True(tokens >= 256 && distinct < tokens);
        model.Profile = new ScoringProfile();
        Score(model);
        Assert.Equal(distinct, model.Profile.FusedFirstBlockRows);
        model.Profile = new ScoringProfile();
        Score(model, share: false);
        Assert.Equal(tokens, model.Profile.FusedFirstBlockRows);
        model.Profile = null;
    }

    [Fact]
    public void An_encoder_reused_across_calls_keeps_its_projections_exact()
    {
        using var model = NewModel();
        var windows = LongRows.SelectMany(r => model.Encode(r.Item1, r.Item2)).ToArray();
        using var noGrad = no_grad();
        var reused = new FusedEncoder(model.Network.Backbone, shareFirstProjections: true);
        var fresh = new FusedEncoder(model.Network.Backbone, shareFirstProjections: false);
        foreach (var part in new[] { windows[..2], windows, windows[3..] })
            Assert.Equal(fresh.Pooled(part, PoolingKind.Mean).data<float>().ToArray(), reused.Pooled(part, PoolingKind.Mean).data<float>().ToArray());
    }

    public static TheoryData<int> Widths() => [128, 160, 48, 40];

    [Theory]
    [MemberData(nameof(Widths))]
    public unsafe void Bf16_bag_sum_is_the_fp32_sum_over_the_rounded_table(int h)
    {
        TorchRuntime.Seed(3);
        const int rows = 64, count = 16;
        var table = randn(rows, h);
        var copy = Bf16Matrix.From(table);
        var rounded = table.to(ScalarType.BFloat16).to(ScalarType.Float32).contiguous();   // the same rounding, as fp32
        var random = new Random(5);
        var index = Enumerable.Range(0, count).Select(_ => random.Next(rows)).ToArray();
        var weights = Enumerable.Range(0, count).Select(_ => (float)random.NextDouble()).ToArray();
        var bias = Enumerable.Range(0, h).Select(_ => (float)random.NextDouble()).ToArray();
        var expected = new float[h];
        var actual = new float[h];
        fixed (int* idx = index)
        fixed (float* w = weights, b = bias, e = expected, a = actual)
        {
            EncoderKernels.BagSum(TensorMemory.Floats(rounded), h, idx, w, count, e, b);
            EncoderKernels.BagSumBf16(copy.Pointer, h, idx, w, count, a, b);
        }
        for (int c = 0; c < h; c++)
            Assert.True(Math.Abs(expected[c] - actual[c]) <= 1e-5f * (1 + Math.Abs(expected[c])), $"column {c}: {expected[c]} vs {actual[c]}");
    }

    [Fact]
    public void Bf16_scoring_is_close_to_fp32_deterministic_and_float32_gives_the_fp32_scores_back()
    {
        using var model = NewModel();
        var fp32 = Score(model);
        model.UseInferencePrecision(InferencePrecision.BFloat16);
        Assert.Equal(InferencePrecision.BFloat16, model.InferencePrecision);
        var bf16 = Score(model);
        Assert.Equal(bf16, Score(model));
        Assert.Equal(bf16, Score(model, tokensPerBatch: 200));                   // neither the encoder nor the head depends on the groups
        Assert.NotEqual(fp32, bf16);                                            // the copies are read
        // Rounding moves activations by ≈ 2⁻⁹ relative; where one lies that close to zero a sign-hash bit flips and the
        // token reads another table row, so a row of few tokens can move by a few hundredths (measured ≤ 0.085 here), a
        // long row by ≈ 0.01–0.02.
        var differences = fp32.Zip(bf16).SelectMany(p => p.First.Zip(p.Second, (a, b) => Math.Abs(a - b))).ToArray();
        Assert.True(differences.Max() <= 0.2f, $"largest |Δ log p| {differences.Max()}");
        Assert.True(differences.Average() <= 0.03f, $"mean |Δ log p| {differences.Average()}");
        for (int r = 0; r < fp32.Length; r++)
        {
            var sorted = fp32[r].OrderDescending().ToArray();
            if (sorted[0] - sorted[1] > 0.4f)                                    // a clear winner stays the winner
                Assert.Equal(Array.IndexOf(fp32[r], sorted[0]), Array.IndexOf(bf16[r], bf16[r].Max()));
        }
        Assert.Throws<NotSupportedException>(() => model.UseInferencePrecision(InferencePrecision.Int8));
        Assert.Equal(InferencePrecision.BFloat16, model.InferencePrecision);    // unchanged by the refusal
        model.UseInferencePrecision(InferencePrecision.Float32);
        Assert.Equal(InferencePrecision.Float32, model.InferencePrecision);
        Assert.Equal(fp32, Score(model));
    }
}
