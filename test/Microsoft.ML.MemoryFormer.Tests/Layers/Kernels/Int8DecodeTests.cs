using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

public class Int8DecodeTests
{
    public static TheoryData<string> Kinds => DecodeTestModels.Kinds;

    /// <summary>Every vector path of the int8 kernels; a path the machine lacks falls back to the next narrower one.</summary>
    public static TheoryData<int, int> WidthsAndPaths => new()
    {
        { 64, 512 }, { 64, 256 }, { 64, 0 }, { 48, 512 }, { 48, 256 }, { 37, 512 }, { 37, 0 }, { 200, 512 }, { 200, 256 },
    };

    private static LanguageModel Model(string kind, int seed) => DecodeTestModels.Model(kind, seed);

    private static Tensor[] DecodeLogits(LanguageModel model, long[] tokens) => DecodeTestModels.DecodeLogits(model, tokens);

    private static readonly long[] Tokens = Enumerable.Range(0, 20).Select(i => (long)((i * 37) + 5) % 300).ToArray();

    [Fact]
    public void Int8_rows_round_to_nearest_with_one_scale_per_row()
    {
        using var weight = tensor(new float[] { 1f, -0.5f, 0.25f, 0f, 0f, 0f, 0f, 0f, -2f, 1f, 0.01f, 2f }).reshape(3, 4);
        var q = Int8Matrix.From(weight);
        Assert.Equal(1f / 127, q.Scale(0), 1e-9f);
        Assert.Equal(0f, q.Scale(1));                                           // an all-zero row: scale 0, values 0
        Assert.Equal(2f / 127, q.Scale(2), 1e-9f);
        Assert.Equal(127f / 127, q[0, 0], 1e-6f);
        Assert.Equal(-64f / 127, q[0, 1], 1e-6f);                               // −63.5 rounds to the even −64
        Assert.Equal(32f / 127, q[0, 2], 1e-6f);                                // 31.75 → 32
        Assert.Equal(0f, q[1, 2]);
        Assert.Equal(-2f, q[2, 0], 1e-6f);
        Assert.Equal(2f * 64 / 127, q[2, 1], 1e-6f);                            // 63.5 → 64 (even)
        Assert.Equal(2f * 1 / 127, q[2, 2], 1e-6f);                             // 0.635 → 1
    }

    [Fact]
    public void Every_int8_value_is_within_half_a_step_of_its_weight()
    {
        random.manual_seed(1);
        using var weight = randn(50, 70) * linspace(0.01, 10, 50).unsqueeze(1);   // rows of very different scales
        var q = Int8Matrix.From(weight);
        var w = weight.data<float>().ToArray();
        for (int r = 0; r < 50; r++)
            for (int c = 0; c < 70; c++)
                Assert.True(Math.Abs(w[(r * 70) + c] - q[r, c]) <= (q.Scale(r) / 2 * 1.0001) + 1e-12, $"({r}, {c})");
    }

    [Theory]
    [MemberData(nameof(WidthsAndPaths))]
    public unsafe void Int8_gemv_equals_a_product_with_the_dequantised_weights(int width, int vectorBits)
    {
        random.manual_seed(width + vectorBits);
        const int vocabulary = 203;                                             // 4-row blocks and a remainder
        using var weight = randn(vocabulary, width);
        using var x = randn(1, width);
        var copy = Int8Matrix.From(weight);
        using var dequantised = tensor(Enumerable.Range(0, vocabulary * width).Select(i => copy[i / width, i % width]).ToArray()).reshape(vocabulary, width);
        using var expected = x.matmul(dequantised.t());
        using var actual = empty(1, vocabulary);
        HeadGemv.DotRowsInt8(TensorMemory.Floats(x), copy.Pointer, copy.Scales, width, 0, vocabulary, TensorMemory.Floats(actual), vectorBits);
        Assert.True(allclose(actual, expected, 1e-4, 1e-4), $"max diff {(actual - expected).abs().max().item<float>()}");
        using var parallel = empty(1, vocabulary);
        HeadGemv.Compute(TensorMemory.Floats(x), 1, copy, TensorMemory.Floats(parallel));
        Assert.True(allclose(parallel, expected, 1e-4, 1e-4), $"HeadGemv.Compute: max diff {(parallel - expected).abs().max().item<float>()}");
        GC.KeepAlive(copy);
    }

    [Theory]
    [MemberData(nameof(WidthsAndPaths))]
    public unsafe void Int8_gather_equals_the_weighted_sum_of_the_dequantised_rows(int width, int vectorBits)
    {
        random.manual_seed(width * 3 + vectorBits);
        const int rows = 40, count = 9;
        using var table = randn(rows, width);
        var copy = Int8Matrix.From(table);
        int[] index = [3, 0, 39, 3, 17, 22, 8, 8, 31];
        float[] weights = [0.5f, -1f, 2f, 0.25f, 1f, -0.75f, 0.1f, 3f, -2f];
        var expected = new float[width];
        for (int j = 0; j < count; j++)
            for (int c = 0; c < width; c++)
                expected[c] += weights[j] * copy[index[j], c];
        var actual = new float[width];
        fixed (int* idx = index)
        fixed (float* w = weights, dst = actual)
            Int8Gather.WeightedBagSum(copy.Pointer, copy.Scales, width, idx, w, count, dst, vectorBits);
        GC.KeepAlive(copy);
        for (int c = 0; c < width; c++)
            Assert.True(Math.Abs(actual[c] - expected[c]) <= 1e-4 * (1 + Math.Abs(expected[c])), $"column {c}: {actual[c]} vs {expected[c]}");
    }

    [Theory]
    [InlineData(1024, 512)]
    [InlineData(1280, 512)]
    [InlineData(384, 512)]
    [InlineData(320, 256)]
    [InlineData(300, 0)]
    public unsafe void Int8_gather_split_by_columns_equals_the_whole_gather_bit_for_bit(int width, int vectorBits)
    {
        random.manual_seed(width + vectorBits);
        using var table = randn(40, width);
        var copy = Int8Matrix.From(table);
        int[] index = [3, 0, 39, 3, 17, 22, 8, 8, 31];
        float[] weights = [0.5f, -1f, 2f, 0.25f, 1f, -0.75f, 0.1f, 3f, -2f];
        float[] whole = new float[width], halves = new float[width];
        int split = width / 2 / 128 * 128;                                      // on a 128-column tile, as the decode step splits
        fixed (int* idx = index)
        fixed (float* w = weights, a = whole, b = halves)
        {
            Int8Gather.WeightedBagSum(copy.Pointer, copy.Scales, width, idx, w, index.Length, a, vectorBits);
            Int8Gather.WeightedBagSum(copy.Pointer, copy.Scales, width, idx, w, index.Length, b, vectorBits, split, width);
            Int8Gather.WeightedBagSum(copy.Pointer, copy.Scales, width, idx, w, index.Length, b, vectorBits, 0, split);
        }
        GC.KeepAlive(copy);
        Assert.Equal(whole, halves);
    }

    /// <summary>
    /// With fp32 tables, only the head is int8, so the bound is exact: a head row r moves by |Σ_c x_c (w_rc − s_r q_rc)|
    /// ≤ (s_r / 2) ‖x‖₁, and x is the final RMSNorm's output, ‖x‖₁ ≤ max|g| · ‖n‖₁ ≤ max|g| · √d · ‖n‖₂ ≤ max|g| · d.
    /// </summary>
    [Fact]
    public void Int8_head_logits_stay_within_half_a_quantisation_step_times_the_input_norm()
    {
        using var model = Model("memoryformer", 3);
        using var _ = no_grad();
        var fp32 = DecodeLogits(model, Tokens);
        model.UseTableCopies = false;
        model.UseInferencePrecision(InferencePrecision.Int8);
        Assert.Equal(InferencePrecision.Int8, model.InferencePrecision);
        var int8 = DecodeLogits(model, Tokens);
        var copy = model.Int8Copy(model.Head.weight!)!;
        float gain = ((RmsNorm)model.Backbone.FinalNorm).Weight.abs().max().item<float>();
        using var bound = tensor(Enumerable.Range(0, copy.Rows).Select(r => (copy.Scale(r) / 2 * gain * model.Config.Width * 1.001f) + 1e-6f).ToArray());
        double maxDiff = 0;
        for (int i = 0; i < Tokens.Length; i++)
        {
            using var diff = (int8[i] - fp32[i]).abs().squeeze(0);
            maxDiff = Math.Max(maxDiff, diff.max().item<float>());
            Assert.True(diff.le(bound).all().item<bool>(), $"token {i}: a logit moved by more than its row's bound");
        }
        Assert.True(maxDiff > 0, "int8 logits equal fp32 bit for bit: the int8 head was not read");

    }

    /// <summary>
    /// Greedy decoding keeps fp32's choice wherever fp32's top-two margin exceeds twice the bound of the test above. The
    /// head is made confident first: the row of a chosen next token at each step gets the step's final hidden state
    /// added (x / ‖x‖ · 0.5), which raises that logit by ≈ 0.5 ‖x‖ ≈ 0.5 √d but the row's bound by only ≈ 0.5 · d ·
    /// max|x|/‖x‖ / 254.
    /// </summary>
    [Fact]
    public void Int8_head_keeps_every_greedy_choice_whose_fp32_margin_exceeds_the_bound()
    {
        using var model = Model("memoryformer", 15);
        using var _ = no_grad();
        using (var hidden = model.Backbone.Forward(tensor(Tokens).unsqueeze(0), AttentionContext.CausalLm).squeeze(0))   // [T, d]
            for (int i = 0; i < Tokens.Length; i++)
                model.Head.weight![((i * 13) + 1) % 300].add_(hidden[i] / hidden[i].norm() * 0.5);
        var fp32 = DecodeLogits(model, Tokens);
        model.UseTableCopies = false;
        model.UseInferencePrecision(InferencePrecision.Int8);
        var int8 = DecodeLogits(model, Tokens);
        var copy = model.Int8Copy(model.Head.weight!)!;
        float gain = ((RmsNorm)model.Backbone.FinalNorm).Weight.abs().max().item<float>();
        float largest = Enumerable.Range(0, copy.Rows).Max(r => copy.Scale(r)) / 2 * gain * model.Config.Width * 1.001f;
        int decided = 0;
        for (int i = 0; i < Tokens.Length; i++)
        {
            var (top, index) = fp32[i].squeeze(0).topk(2);
            if (top[0].item<float>() - top[1].item<float>() <= 2 * largest)
                continue;
            decided++;
            Assert.Equal(index[0].item<long>(), int8[i].argmax().item<long>());
        }
        Assert.True(decided >= Tokens.Length / 2, $"only {decided} of {Tokens.Length} steps have a margin above 2 × {largest:G3}: the check says little");
    }

    /// <summary>
    /// Dense: every weight moves by at most half a step, s / 2 = max|row| / 254, which for a Gaussian row of 64 entries
    /// (max ≈ 2.4σ) is ≈ σ/100 — about 5× bf16's typical rounding error (2⁻⁹ |w|, ≈ σ/640 on average); the bf16 test allows
    /// 0.02 · max |logit|, so this one allows 0.1 · max |logit| (every matrix is int8 and the layers' errors add up).
    /// No such bound holds for MemoryFormer's int8 tables: a sign hash is discontinuous, so any change of the tables
    /// (bf16 rounding, or noise of 10⁻³ of their spread, as much as int8's) flips some hash bits of a random model and
    /// moves its logits by 20–50% of their scale; its accuracy cost is measured on trained models (<c>perf bf16</c>) and
    /// its arithmetic is tested exactly below (<see cref="Int8_decode_equals_fp32_decode_of_the_dequantised_weights"/>).
    /// </summary>
    [Fact]
    public void Dense_int8_decode_logits_are_close_to_fp32()
    {
        using var model = Model("dense", 4);
        using var _ = no_grad();
        var fp32 = DecodeLogits(model, Tokens);
        model.UseInferencePrecision(InferencePrecision.Int8);
        var int8 = DecodeLogits(model, Tokens);
        double maxDiff = 0, scale = 0;
        for (int i = 0; i < Tokens.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, (int8[i] - fp32[i]).abs().max().item<float>());
            scale = Math.Max(scale, fp32[i].abs().max().item<float>());
        }
        Assert.True(maxDiff > 0, "int8 logits equal fp32 bit for bit: the int8 copies were not read");
        Assert.True(maxDiff <= 0.1 * scale, $"max |Δ logit| {maxDiff:G3} > 0.1 × max |logit| {scale:G3}");
    }

    /// <summary>
    /// The int8 step computes what the fp32 step computes on weights replaced by their dequantised values s · q (head,
    /// tables or dense matrices): equal up to fp32 rounding (the int8 kernels fold s into the hash weight or apply it to
    /// the row's sum, another order of the same products).
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public void Int8_decode_equals_fp32_decode_of_the_dequantised_weights(string kind)
    {
        using var model = Model(kind, 4);
        using var _ = no_grad();
        model.UseInferencePrecision(InferencePrecision.Int8);
        var int8 = DecodeLogits(model, Tokens);
        int copied = 0;
        foreach (var p in model.parameters())
        {
            if (model.Int8Copy(p) is not { } copy)
                continue;
            var values = new float[copy.Rows * copy.Columns];
            for (int r = 0; r < copy.Rows; r++)
                for (int c = 0; c < copy.Columns; c++)
                    values[(r * copy.Columns) + c] = copy[r, c];
            p.copy_(tensor(values).reshape(copy.Rows, copy.Columns));
            copied++;
        }
        Assert.Equal(kind == "dense" ? 1 + (4 * model.Config.Layers) : 1 + (5 * model.Config.Layers), copied);
        model.UseInferencePrecision(InferencePrecision.Float32);
        var dequantised = DecodeLogits(model, Tokens);
        DecodeTestModels.AssertSameUpToRounding(dequantised, int8);
    }

    [Fact]
    public void Int8_tables_change_the_logits_beyond_the_int8_head_alone()
    {
        using var model = Model("memoryformer", 5);
        using var _ = no_grad();
        model.UseTableCopies = false;
        model.UseInferencePrecision(InferencePrecision.Int8);
        var headOnly = DecodeLogits(model, Tokens);
        model.UseTableCopies = true;
        model.UseInferencePrecision(InferencePrecision.Int8);
        var withTables = DecodeLogits(model, Tokens);
        Assert.False(headOnly.Zip(withTables).All(p => p.First.eq(p.Second).all().item<bool>()), "the int8 tables were not read");
    }

    [Fact]
    public void Greedy_text_of_the_dense_model_with_int8_matrices_matches_fp32_on_a_confident_model()
    {
        // A model whose head strongly prefers one continuation per token: int8 matrices must not change greedy choices.
        // MemoryFormer's greedy choices under an int8 head are tested against the exact bound above; its int8 tables flip
        // hash bits of a random model (Dense_int8_decode_logits_are_close_to_fp32), so perf bf16 measures their greedy
        // agreement on trained models.
        using var model = Model("dense", 8);
        using (no_grad())
            model.Head.weight!.mul_(50);
        var generator = new TextGenerator(model, new Microsoft.ML.MemoryFormer.Text.ByteLevelTokenizer(), CPU);
        var options = new GenerationOptions { Temperature = 0, MaxNewTokens = 24 };
        var fp32 = generator.GenerateIds([72, 105], options, useCache: true);
        model.UseInferencePrecision(InferencePrecision.Int8);
        var int8 = generator.GenerateIds([72, 105], options, useCache: true);
        int agree = fp32.Zip(int8).TakeWhile(p => p.First == p.Second).Count();
        Assert.True(agree >= 20, $"greedy texts agree on the first {agree} of {fp32.Length} tokens only");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Switching_back_to_float32_gives_the_fp32_logits_back_exactly(string kind)
    {
        using var model = Model(kind, 6);
        using var _ = no_grad();
        long[] tokens = [1, 2, 3, 250, 7];
        var before = DecodeLogits(model, tokens);
        model.UseInferencePrecision(InferencePrecision.Int8);
        model.UseInferencePrecision(InferencePrecision.Float32);
        Assert.Equal(InferencePrecision.Float32, model.InferencePrecision);
        var after = DecodeLogits(model, tokens);
        model.UseInferencePrecision(InferencePrecision.Int8);
        model.UseBFloat16Inference(false);                                      // the old switch drops int8 copies too
        var afterOldSwitch = DecodeLogits(model, tokens);
        for (int i = 0; i < tokens.Length; i++)
        {
            Assert.True(after[i].eq(before[i]).all().item<bool>(), $"token {i}");
            Assert.True(afterOldSwitch[i].eq(before[i]).all().item<bool>(), $"token {i} after UseBFloat16Inference(false)");
        }
    }

    [Fact]
    public void The_bf16_switch_and_the_precision_switch_agree()
    {
        using var model = Model("memoryformer", 7);
        model.UseBFloat16Inference();
        Assert.Equal(InferencePrecision.BFloat16, model.InferencePrecision);
        Assert.True(model.BFloat16Inference);
        model.UseInferencePrecision(InferencePrecision.Int8);
        Assert.False(model.BFloat16Inference);                                  // one precision at a time
        Assert.Null(model.BFloat16Copy(model.Head.weight!));
        Assert.NotNull(model.Int8Copy(model.Head.weight!));
        model.UseInferencePrecision(InferencePrecision.BFloat16);
        Assert.Null(model.Int8Copy(model.Head.weight!));
        Assert.NotNull(model.BFloat16Copy(model.Head.weight!));
    }

    [Fact]
    public void Switching_to_training_mode_drops_the_int8_copies()
    {
        using var model = Model("memoryformer", 9);
        model.UseInferencePrecision(InferencePrecision.Int8);
        model.eval();
        Assert.Equal(InferencePrecision.Int8, model.InferencePrecision);
        model.train();
        model.eval();
        Assert.Equal(InferencePrecision.Float32, model.InferencePrecision);
    }

    [Fact]
    public void Int8_copies_are_not_saved_and_a_loaded_model_decodes_in_fp32()
    {
        using var model = Model("memoryformer", 10);
        var plain = ModuleWeights.ToBytes(model);
        model.UseInferencePrecision(InferencePrecision.Int8);
        var saved = ModuleWeights.ToBytes(model);
        Assert.Equal(plain, saved);                                             // the weights are untouched, the copies not written
        using var loaded = Model("memoryformer", 11);
        ModuleWeights.Load(loaded, saved, loaded.Config);
        Assert.Equal(InferencePrecision.Float32, loaded.InferencePrecision);
        using var _ = no_grad();
        model.UseInferencePrecision(InferencePrecision.Float32);
        var expected = DecodeLogits(model, [4, 5, 6]);
        var actual = DecodeLogits(loaded, [4, 5, 6]);
        for (int i = 0; i < 3; i++)
            Assert.True(actual[i].eq(expected[i]).all().item<bool>(), $"token {i}");
    }

    [Fact]
    public void An_undefined_precision_is_refused_with_the_valid_names()
    {
        using var model = Model("memoryformer", 12);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.UseInferencePrecision((InferencePrecision)7));
        Assert.Contains("Int8", e.Message);
        Assert.Equal(InferencePrecision.Float32, model.InferencePrecision);
    }

    [Fact]
    public void Int8_inference_with_a_non_finite_weight_is_refused_naming_the_row()
    {
        using var model = Model("memoryformer", 13);
        using (no_grad())
            model.Head.weight![17, 3] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => model.UseInferencePrecision(InferencePrecision.Int8));
        Assert.Contains("row 17", e.Message);
        Assert.Equal(InferencePrecision.Float32, model.InferencePrecision);
    }

    [Fact]
    public void Int8_inference_on_a_non_float32_model_is_refused_with_the_fix()
    {
        using var model = Model("dense", 14);
        model.to(ScalarType.Float64);
        var e = Assert.Throws<InvalidOperationException>(() => model.UseInferencePrecision(InferencePrecision.Int8));
        Assert.Contains("float32", e.Message);
    }
}
