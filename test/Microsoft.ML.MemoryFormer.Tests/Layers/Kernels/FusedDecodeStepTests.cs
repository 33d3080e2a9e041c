using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

public class FusedDecodeStepTests
{
    public static TheoryData<string> Configs => ["nano", "wide", "paper-weights", "dense", "dense-wide", "parallel-gathers"];

    private static MemoryFormerConfig Config(string name) => name switch
    {
        "nano" => MemoryFormerConfig.Nano,
        // τ = 8, rotary on 8 of 32 head dims, τ + 2 = 10-bit chunks in the Memory Block
        "wide" => MemoryFormerConfig.Nano with { Width = 64, Heads = 2, BitsPerChunk = 8, ContextLength = 32, VocabularySize = 100 },
        // the dense baseline takes the same fused step (FusedDenseDecodeBlock)
        "dense" => MemoryFormerConfig.Nano with { Kind = TransformerKind.Dense },
        "dense-wide" => MemoryFormerConfig.Nano with { Kind = TransformerKind.Dense, Width = 64, Heads = 2, ContextLength = 32, VocabularySize = 100 },
        // K·d = 112 · 448 rows·columns per Q/K/V gather: enough work that the step could split its gathers between threads
        "parallel-gathers" => MemoryFormerConfig.Nano with { Width = 448, Heads = 7, Layers = 1 },
        _ => MemoryFormerConfig.Nano with { WeightFunction = HashWeightFunction.SigmoidProduct, Temperature = 0.7, ExtraBits = 1 },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void Logits_and_cache_equal_the_general_path_token_by_token(string name)
    {
        random.manual_seed(4);
        using var model = new LanguageModel(Config(name));
        model.eval();
        using var _ = no_grad();
        int v = model.Config.VocabularySize;
        var tokens = randint(0, v, [1, 14]);
        var general = model.Backbone.NewCaches(1, CPU);
        var fusedCaches = model.Backbone.NewCaches(1, CPU);
        model.Forward(tokens[.., ..5], new AttentionContext(true, Caches: general));      // same prefill for both
        model.Forward(tokens[.., ..5], new AttentionContext(true, Caches: fusedCaches));
        var fused = FusedDecodeStep.TryCreate(model, fusedCaches);
        Assert.NotNull(fused);
        for (int t = 5; t < 14; t++)
        {
            var expected = model.ForwardLast(tokens[.., t..(t + 1)], new AttentionContext(true, Caches: general)); // [1, V]
            var actual = fused.Logits((int)tokens[0, t].item<long>());                                         // [1, V]
            Assert.True(allclose(actual, expected, 1e-4, 1e-5), $"position {t}: max diff {(actual - expected).abs().max().item<float>()}");
        }
        for (int i = 0; i < general.Length; i++)
        {
            Assert.Equal(general[i].Length, fusedCaches[i].Length);
            Assert.True(allclose(fusedCaches[i].Buffers.Keys, general[i].Buffers.Keys, 1e-5, 1e-6));
            Assert.True(allclose(fusedCaches[i].Buffers.Values, general[i].Buffers.Values, 1e-5, 1e-6));
        }
        foreach (var c in general.Concat(fusedCaches)) c.Dispose();
    }

    [Theory]
    [InlineData("Hello")]
    [InlineData("")]
    public void Greedy_tokens_with_and_without_the_fused_step_are_identical(string prompt)
    {
        var tokenizer = new ByteLevelTokenizer();
        random.manual_seed(21);
        // context 16: 40 new tokens slide the window (and refill the caches through the general path) twice
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize });
        var generator = new TextGenerator(model, tokenizer, CPU);
        var options = new GenerationOptions { Temperature = 0, MaxNewTokens = 40 };
        var ids = tokenizer.Encode(prompt);
        var fused = generator.GenerateIds(ids, options, useCache: true);
        model.UseFusedDecode = false;
        var general = generator.GenerateIds(ids, options, useCache: true);
        Assert.Equal(general, fused);
    }

    [Fact]
    public void Greedy_tokens_of_the_dense_baseline_with_and_without_the_fused_step_are_identical()
    {
        var tokenizer = new ByteLevelTokenizer();
        random.manual_seed(22);
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { Kind = TransformerKind.Dense, VocabularySize = tokenizer.ModelVocabularySize });
        var generator = new TextGenerator(model, tokenizer, CPU);
        var options = new GenerationOptions { Temperature = 0, MaxNewTokens = 40 };
        var ids = tokenizer.Encode("To be");
        var fused = generator.GenerateIds(ids, options, useCache: true);
        model.UseFusedDecode = false;
        Assert.Equal(generator.GenerateIds(ids, options, useCache: true), fused);
    }

    [Fact]
    public void The_general_path_runs_where_the_fused_step_does_not_apply()
    {
        random.manual_seed(1);
        using var dense = new LanguageModel(MemoryFormerConfig.Nano with { Kind = TransformerKind.Dense });
        using var layerNorm = new LanguageModel(MemoryFormerConfig.Nano with { Norm = NormKind.LayerNorm, NormEpsilon = 1e-5 });
        using var mf = new LanguageModel(MemoryFormerConfig.Nano);
        foreach (var m in new[] { dense, layerNorm, mf }) m.eval();
        Assert.NotNull(FusedDecodeStep.TryCreate(dense, dense.Backbone.NewCaches(1, CPU)));   // the dense step exists too
        Assert.Null(FusedDecodeStep.TryCreate(layerNorm, layerNorm.Backbone.NewCaches(1, CPU)));
        Assert.Null(FusedDecodeStep.TryCreate(mf, mf.Backbone.NewCaches(2, CPU)));   // a batch
        Assert.Null(FusedDecodeStep.TryCreate(mf, null));                             // no cache
        Assert.NotNull(FusedDecodeStep.TryCreate(mf, mf.Backbone.NewCaches(1, CPU)));
        mf.train();
        Assert.Null(FusedDecodeStep.TryCreate(mf, mf.Backbone.NewCaches(1, CPU)));
    }

    [Fact]
    public void Decoding_to_the_end_of_the_cache_then_one_more_is_refused_before_any_write()
    {
        random.manual_seed(6);
        using var model = new LanguageModel(MemoryFormerConfig.Nano);           // 16 positions, 2 heads
        model.eval();
        using var _ = no_grad();
        var caches = model.Backbone.NewCaches(1, CPU);
        var fused = FusedDecodeStep.TryCreate(model, caches);
        Assert.NotNull(fused);
        for (int t = 0; t < model.Config.ContextLength; t++)
            Assert.True(fused.Logits(t % 64).isfinite().all().item<bool>());
        Assert.All(caches, c => Assert.Equal(c.Capacity, c.Length));

        var before = caches.Select(c => (c.Buffers.Keys.clone(), c.Buffers.Values.clone())).ToArray();
        var e = Assert.Throws<InvalidOperationException>(() => fused.Logits(1));
        Assert.Contains("full", e.Message);
        for (int i = 0; i < caches.Length; i++)
        {
            // Before the check, layer 0 wrote head 0's key past the end of its row, over head 1's first position.
            Assert.Equal(caches[i].Capacity, caches[i].Length);
            Assert.True(caches[i].Buffers.Keys.eq(before[i].Item1).all().item<bool>(), $"layer {i}'s keys changed");
            Assert.True(caches[i].Buffers.Values.eq(before[i].Item2).all().item<bool>(), $"layer {i}'s values changed");
        }
        foreach (var c in caches) c.Dispose();
    }

    [Theory]
    [InlineData(InferencePrecision.Float32)]
    [InlineData(InferencePrecision.BFloat16)]
    [InlineData(InferencePrecision.Int8)]
    public void Gathers_split_between_two_threads_equal_one_thread_bit_for_bit(InferencePrecision precision)
    {
        using var model = DecodeTestModels.Model("memoryformer-wide", 11);
        using var _ = no_grad();
        model.UseInferencePrecision(precision);
        long[] tokens = [1, 2, 3, 250, 7, 40, 99];
        model.UseTwoThreadGathers = true;
        var split = DecodeTestModels.DecodeLogits(model, tokens);
        model.UseTwoThreadGathers = false;
        var oneThread = DecodeTestModels.DecodeLogits(model, tokens);
        for (int i = 0; i < tokens.Length; i++)
            Assert.True(split[i].eq(oneThread[i]).all().item<bool>(), $"token {i}");
    }
}
