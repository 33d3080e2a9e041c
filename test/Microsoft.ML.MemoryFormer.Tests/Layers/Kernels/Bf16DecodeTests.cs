using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

public class Bf16DecodeTests
{
    public static TheoryData<string> Kinds => DecodeTestModels.Kinds;

    private static LanguageModel Model(string kind, int seed) => DecodeTestModels.Model(kind, seed);

    private static Tensor[] DecodeLogits(LanguageModel model, long[] tokens) => DecodeTestModels.DecodeLogits(model, tokens);

    /// <summary>
    /// Tolerance: a bf16 weight has a relative rounding error ≤ 2⁻⁹, so a logit Σ x_i w_i moves by at most
    /// 2⁻⁹ Σ |x_i w_i|; we allow 2⁻⁸ of the largest fp32 logit's scale per layer's worth of error, i.e. max |Δ| ≤ 0.02 · max |logit|
    /// (the dense baseline's every matrix is bf16; the errors of its layers add up).
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public void Bf16_decode_logits_are_close_to_fp32_and_not_identical(string kind)
    {
        using var model = Model(kind, 3);
        using var _ = no_grad();
        var tokens = Enumerable.Range(0, 20).Select(i => (long)((i * 37) + 5) % 300).ToArray();
        var fp32 = DecodeLogits(model, tokens);
        model.UseBFloat16Inference();
        Assert.True(model.BFloat16Inference);
        var bf16 = DecodeLogits(model, tokens);
        double maxDiff = 0, scale = 0;
        for (int i = 0; i < tokens.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, (bf16[i] - fp32[i]).abs().max().item<float>());
            scale = Math.Max(scale, fp32[i].abs().max().item<float>());
        }
        Assert.True(maxDiff > 0, "bf16 logits equal fp32 bit for bit: the bf16 copies were not read");
        Assert.True(maxDiff <= 0.02 * scale, $"max |Δ logit| {maxDiff:G3} > 0.02 × max |logit| {scale:G3}");
    }

    [Fact]
    public void Switching_bf16_off_gives_the_fp32_logits_back_exactly()
    {
        using var model = Model("memoryformer", 5);
        using var _ = no_grad();
        long[] tokens = [1, 2, 3, 250, 7];
        var before = DecodeLogits(model, tokens);
        model.UseBFloat16Inference();
        model.UseBFloat16Inference(false);
        Assert.False(model.BFloat16Inference);
        var after = DecodeLogits(model, tokens);
        for (int i = 0; i < tokens.Length; i++)
            Assert.True(after[i].eq(before[i]).all().item<bool>(), $"token {i}");
    }

    [Fact]
    public void Switching_to_training_mode_drops_the_bf16_copies_so_they_cannot_go_stale()
    {
        using var model = Model("memoryformer", 6);
        model.UseBFloat16Inference();
        model.eval();                                                            // eval keeps them
        Assert.True(model.BFloat16Inference);
        model.train();
        model.eval();
        Assert.False(model.BFloat16Inference);
    }

    [Fact]
    public void Greedy_text_with_bf16_matches_fp32_on_a_confident_model()
    {
        // A model whose head strongly prefers one continuation per token: bf16 must not change greedy choices.
        using var model = Model("memoryformer", 8);
        using (no_grad())
            model.Head.weight!.mul_(50);
        var generator = new TextGenerator(model, new Microsoft.ML.MemoryFormer.Text.ByteLevelTokenizer(), CPU);
        var options = new GenerationOptions { Temperature = 0, MaxNewTokens = 24 };
        var fp32 = generator.GenerateIds([72, 105], options, useCache: true);
        model.UseBFloat16Inference();
        var bf16 = generator.GenerateIds([72, 105], options, useCache: true);
        int agree = fp32.Zip(bf16).TakeWhile(p => p.First == p.Second).Count();
        Assert.True(agree >= 20, $"greedy texts agree on the first {agree} of {fp32.Length} tokens only");
    }

    [Theory]
    [InlineData(64, 1003)]     // pairs of bf16 per 32-bit lane (d a multiple of 32)
    [InlineData(48, 517)]      // 16 values widened at a time
    [InlineData(37, 99)]       // scalar
    public unsafe void Bf16_head_gemv_equals_a_linear_layer_over_the_rounded_weights(int width, int vocabulary)
    {
        random.manual_seed(width);
        using var weight = randn(vocabulary, width);
        using var x = randn(1, width);
        var copy = Bf16Matrix.From(weight);
        using var rounded = weight.to(ScalarType.BFloat16).to(ScalarType.Float32);   // torch rounds to nearest even too
        using var expected = x.matmul(rounded.t());
        using var actual = empty(1, vocabulary);
        HeadGemv.Compute(TensorMemory.Floats(x), 1, TensorMemory.Floats(weight), copy.Pointer, vocabulary, width, TensorMemory.Floats(actual));
        GC.KeepAlive(copy);
        Assert.True(allclose(actual, expected, 1e-4, 1e-4), $"max diff {(actual - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void Bf16_rounding_is_to_nearest_with_ties_to_even()
    {
        Assert.Equal(0x3F80, Bf16Matrix.Round(1f));
        Assert.Equal(0x3F80, Bf16Matrix.Round(1f + MathF.Pow(2, -8)));          // halfway, 0x3F80 is even
        Assert.Equal(0x3F82, Bf16Matrix.Round(1f + (3 * MathF.Pow(2, -8))));    // halfway, 0x3F82 is even
        Assert.Equal(0x3F81, Bf16Matrix.Round(1f + MathF.Pow(2, -7) + MathF.Pow(2, -10)));
        Assert.Equal(0xBF80, Bf16Matrix.Round(-1f));
        Assert.True(float.IsNaN(Bf16Matrix.ToFloat(Bf16Matrix.Round(float.NaN))));
    }

    [Fact]
    public void Bf16_inference_on_a_non_float32_model_is_refused_with_the_fix()
    {
        using var model = Model("memoryformer", 9);
        model.to(ScalarType.Float64);
        var e = Assert.Throws<InvalidOperationException>(() => model.UseBFloat16Inference());
        Assert.Contains("float32", e.Message);
    }
}
