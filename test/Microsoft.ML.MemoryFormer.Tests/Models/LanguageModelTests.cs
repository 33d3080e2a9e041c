using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

public class LanguageModelTests
{
    public static TheoryData<TransformerKind> Kinds => new() { TransformerKind.MemoryFormer, TransformerKind.Dense };

    private static LanguageModel NewModel(TransformerKind kind, int seed = 5)
    {
        random.manual_seed(seed);
        var model = new LanguageModel(MemoryFormerConfig.Nano with { Kind = kind });
        model.eval();
        return model;
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Changing_later_tokens_never_changes_earlier_outputs(TransformerKind kind)
    {
        using var model = NewModel(kind);
        using var _ = no_grad();
        var a = randint(0, 64, [2, 12]);
        var b = a.clone();
        b[.., 7..] = randint(0, 64, [2, 5]);
        var la = model.call(a);
        var lb = model.call(b);
        Assert.True(allclose(la[.., ..7], lb[.., ..7], 1e-5, 1e-6));
        Assert.False(allclose(la[.., 7..], lb[.., 7..], 1e-5, 1e-6));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Pad_tokens_never_change_the_outputs_of_real_tokens_in_bidirectional_mode(TransformerKind kind)
    {
        using var model = NewModel(kind);
        using var _ = no_grad();
        var tokens = randint(1, 64, [1, 10]);
        var mask = ones([1, 10], ScalarType.Bool);
        mask[0, 6..] = tensor(false);
        var other = tokens.clone();
        other[0, 6..] = randint(1, 64, [4]);
        var context = new AttentionContext(Causal: false, KeyMask: mask);
        var h1 = model.Backbone.Forward(tokens, context);
        var h2 = model.Backbone.Forward(other, context);
        Assert.True(allclose(h1[.., ..6], h2[.., ..6], 1e-5, 1e-6));
        // and without the mask the pads do leak into real positions (the mask is what protects them)
        var open = new AttentionContext(Causal: false);
        Assert.False(allclose(model.Backbone.Forward(tokens, open)[.., ..6], model.Backbone.Forward(other, open)[.., ..6], 1e-5, 1e-6));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Incremental_decoding_with_the_kv_cache_equals_a_full_forward(TransformerKind kind)
    {
        using var model = NewModel(kind);
        using var _ = no_grad();
        var tokens = randint(0, 64, [2, 11]);
        var full = model.call(tokens);                                        // [2, 11, V]
        var caches = model.Backbone.NewCaches(2, CPU);
        var context = new AttentionContext(true, Caches: caches);
        var prefill = model.Forward(tokens[.., ..5], context);                // 5 positions at once
        Assert.True(allclose(prefill, full[.., ..5], 1e-4, 1e-5));
        var chunk = model.Forward(tokens[.., 5..8], context);                 // 3 more after a cached prefix
        Assert.True(allclose(chunk, full[.., 5..8], 1e-4, 1e-5));
        for (int t = 8; t < 11; t++)                                          // one at a time
            Assert.True(allclose(model.ForwardLast(tokens[.., t..(t + 1)], context), full[.., t], 1e-4, 1e-5));
        foreach (var c in caches) c.Dispose();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Parameter_count_equals_the_estimator(TransformerKind kind)
    {
        using var model = NewModel(kind);
        long actual = model.parameters().Sum(p => p.numel());
        Assert.Equal(CostEstimator.LanguageModelParameters(model.Config), actual);
        var groups = ParameterGroups.Of(model);
        long expectedTables = kind == TransformerKind.MemoryFormer ? model.Config.Layers * CostEstimator.BlockTableParameters(model.Config) : 0;
        Assert.Equal(expectedTables, groups.Counts.Tables);
        var (tables, matrices, vectors) = groups.Counts;
        Assert.Equal(actual, tables + matrices + vectors);                 // a partition: no parameter in two groups
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Saved_weights_reload_into_identical_logits(TransformerKind kind)
    {
        using var model = NewModel(kind, seed: 7);
        var bytes = ModuleWeights.ToBytes(model);
        using var other = NewModel(kind, seed: 8);
        var tokens = randint(0, 64, [1, 9]);
        using var _ = no_grad();
        Assert.False(allclose(model.call(tokens), other.call(tokens)));
        ModuleWeights.Load(other, bytes, other.Config);
        Assert.True((model.call(tokens) == other.call(tokens)).all().item<bool>());
    }

    [Fact]
    public void Loading_weights_of_another_architecture_names_the_mismatch()
    {
        using var model = NewModel(TransformerKind.MemoryFormer);
        var bytes = ModuleWeights.ToBytes(model);
        var wider = MemoryFormerConfig.Nano with { Width = 32, BitsPerChunk = 4 };
        using var other = new LanguageModel(wider);
        var e = Assert.Throws<InvalidDataException>(() => ModuleWeights.Load(other, bytes, wider));
        Assert.Contains("Width = 32", e.Message);
    }
}
