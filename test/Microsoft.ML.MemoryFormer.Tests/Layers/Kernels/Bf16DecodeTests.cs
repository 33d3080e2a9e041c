using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Layers;
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
    /// (the dense baseline's every matrix is bf16; the errors of its layers add up). MemoryFormer's tables stay fp32 here:
    /// rounding them flips sign-hash bits of a random model, which no such bound covers (see
    /// <c>Int8DecodeTests.Dense_int8_decode_logits_are_close_to_fp32</c>); their arithmetic is tested exactly by
    /// <see cref="Bf16_decode_equals_fp32_decode_of_the_rounded_weights"/>.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public void Bf16_decode_logits_are_close_to_fp32_and_not_identical(string kind)
    {
        using var model = Model(kind, 3);
        using var _ = no_grad();
        var tokens = Enumerable.Range(0, 20).Select(i => (long)((i * 37) + 5) % 300).ToArray();
        var fp32 = DecodeLogits(model, tokens);
        model.UseTableCopies = false;
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
        // A model whose head strongly prefers one continuation per token: a bf16 head must not change greedy choices.
        // bf16 tables flip sign-hash bits of a random model (greedy agreement 4 of 24 here), so they stay fp32 in this
        // test; perf bf16 measures their greedy agreement on trained models.
        using var model = Model("memoryformer", 8);
        using (no_grad())
            model.Head.weight!.mul_(50);
        var generator = new TextGenerator(model, new Microsoft.ML.MemoryFormer.Text.ByteLevelTokenizer(), CPU);
        var options = new GenerationOptions { Temperature = 0, MaxNewTokens = 24 };
        var fp32 = generator.GenerateIds([72, 105], options, useCache: true);
        model.UseTableCopies = false;
        model.UseBFloat16Inference();
        var bf16 = generator.GenerateIds([72, 105], options, useCache: true);
        int agree = fp32.Zip(bf16).TakeWhile(p => p.First == p.Second).Count();
        Assert.True(agree >= 20, $"greedy texts agree on the first {agree} of {fp32.Length} tokens only");
    }

    [Theory]
    [InlineData(64, 1003)]     // pairs of bf16 per 32-bit lane (d a multiple of 32)
    [InlineData(96, 257)]      // pairs, 64 and a last 32
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

    /// <summary>The bf16 kernel's paths (paired AVX-512 and scalar) agree with a product over the rounded weights, for
    /// widths with and without a last 32 columns and a width the paired path does not take.</summary>
    [Theory]
    [InlineData(1024, 512)]
    [InlineData(1024, 0)]
    [InlineData(96, 512)]
    [InlineData(96, 0)]
    [InlineData(48, 512)]
    [InlineData(37, 0)]
    public unsafe void Bf16_gemv_paths_equal_a_product_with_the_rounded_weights(int width, int vectorBits)
    {
        random.manual_seed(width + vectorBits);
        const int vocabulary = 67;
        using var weight = randn(vocabulary, width);
        using var x = randn(1, width);
        var copy = Bf16Matrix.From(weight);
        using var rounded = weight.to(ScalarType.BFloat16).to(ScalarType.Float32);
        using var expected = x.matmul(rounded.t());
        using var actual = empty(1, vocabulary);
        var split = new float[width];
        fixed (float* s = split)
        {
            HeadGemv.SplitEvenOdd(TensorMemory.Floats(x), width, s);
            HeadGemv.DotRowsBf16(TensorMemory.Floats(x), s, copy.Pointer, width, 0, vocabulary, TensorMemory.Floats(actual), vectorBits);
        }
        GC.KeepAlive(copy);
        Assert.True(allclose(actual, expected, 1e-4, 1e-4), $"max diff {(actual - expected).abs().max().item<float>()}");
    }

    public static TheoryData<int, int> GatherWidthsAndPaths => new()
    {
        { 128, 512 }, { 128, 256 }, { 128, 0 }, { 200, 512 }, { 200, 256 }, { 37, 512 }, { 37, 0 }, { 1280, 512 },
    };

    [Theory]
    [MemberData(nameof(GatherWidthsAndPaths))]
    public unsafe void Bf16_gather_equals_the_weighted_sum_of_the_rounded_rows(int width, int vectorBits)
    {
        random.manual_seed((width * 3) + vectorBits);
        const int rows = 40, count = 9;
        using var table = randn(rows, width);
        var copy = Bf16Matrix.From(table);
        var rounded = table.to(ScalarType.BFloat16).to(ScalarType.Float32).data<float>().ToArray();
        int[] index = [3, 0, 39, 3, 17, 22, 8, 8, 31];
        float[] weights = [0.5f, -1f, 2f, 0.25f, 1f, -0.75f, 0.1f, 3f, -2f];
        var expected = new float[width];
        for (int j = 0; j < count; j++)
            for (int c = 0; c < width; c++)
                expected[c] += weights[j] * rounded[(index[j] * width) + c];
        var actual = new float[width];
        fixed (int* idx = index)
        fixed (float* w = weights, dst = actual)
            Bf16Gather.WeightedBagSum(copy.Pointer, width, idx, w, count, dst, vectorBits);
        GC.KeepAlive(copy);
        for (int c = 0; c < width; c++)
            Assert.True(Math.Abs(actual[c] - expected[c]) <= 1e-4 * (1 + Math.Abs(expected[c])), $"column {c}: {actual[c]} vs {expected[c]}");
    }

    /// <summary>
    /// The bf16 step computes what the fp32 step computes on weights replaced by their rounded values (head, MemoryFormer's
    /// tables, the dense baseline's matrices): equal up to fp32 rounding (the kernels sum the same products in another order).
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public void Bf16_decode_equals_fp32_decode_of_the_rounded_weights(string kind)
    {
        using var model = Model(kind, 4);
        using var _ = no_grad();
        long[] tokens = Enumerable.Range(0, 20).Select(i => (long)((i * 37) + 5) % 300).ToArray();
        model.UseInferencePrecision(InferencePrecision.BFloat16);
        var bf16 = DecodeLogits(model, tokens);
        int copied = 0;
        foreach (var p in model.parameters())
        {
            if (model.BFloat16Copy(p) is null)
                continue;
            p.copy_(p.to(ScalarType.BFloat16).to(ScalarType.Float32));
            copied++;
        }
        Assert.Equal(kind == "dense" ? 1 + (4 * model.Config.Layers) : 1 + (5 * model.Config.Layers), copied);
        model.UseInferencePrecision(InferencePrecision.Float32);
        var rounded = DecodeLogits(model, tokens);
        DecodeTestModels.AssertSameUpToRounding(rounded, bf16);
    }

    [Fact]
    public void Bf16_tables_change_the_logits_beyond_the_bf16_head_alone()
    {
        using var model = Model("memoryformer", 5);
        using var _ = no_grad();
        long[] tokens = [1, 2, 3, 250, 7, 40];
        model.UseTableCopies = false;
        model.UseInferencePrecision(InferencePrecision.BFloat16);
        Assert.Null(model.BFloat16Copy(((MemoryQkv)model.Backbone.Blocks[0].Attention.Qkv).Query.Table));
        var headOnly = DecodeLogits(model, tokens);
        model.UseTableCopies = true;
        model.UseInferencePrecision(InferencePrecision.BFloat16);
        Assert.NotNull(model.BFloat16Copy(((MemoryQkv)model.Backbone.Blocks[0].Attention.Qkv).Query.Table));
        var withTables = DecodeLogits(model, tokens);
        Assert.False(headOnly.Zip(withTables).All(p => p.First.eq(p.Second).all().item<bool>()), "the bf16 tables were not read");
    }

    [Theory]
    [InlineData(1024, 512)]
    [InlineData(1280, 512)]
    [InlineData(384, 512)]
    [InlineData(320, 256)]
    [InlineData(300, 0)]
    public unsafe void Bf16_gather_split_by_columns_equals_the_whole_gather_bit_for_bit(int width, int vectorBits)
    {
        random.manual_seed(width + vectorBits);
        using var table = randn(40, width);
        var copy = Bf16Matrix.From(table);
        int[] index = [3, 0, 39, 3, 17, 22, 8, 8, 31];
        float[] weights = [0.5f, -1f, 2f, 0.25f, 1f, -0.75f, 0.1f, 3f, -2f];
        float[] whole = new float[width], halves = new float[width];
        int split = width / 2 / 128 * 128;                                      // on a 128-column tile, as the decode step splits
        fixed (int* idx = index)
        fixed (float* w = weights, a = whole, b = halves)
        {
            Bf16Gather.WeightedBagSum(copy.Pointer, width, idx, w, index.Length, a, vectorBits);
            Bf16Gather.WeightedBagSum(copy.Pointer, width, idx, w, index.Length, b, vectorBits, split, width);
            Bf16Gather.WeightedBagSum(copy.Pointer, width, idx, w, index.Length, b, vectorBits, 0, split);
        }
        GC.KeepAlive(copy);
        Assert.Equal(whole, halves);
    }
}
