using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The tiny models and the token-by-token fused decode the reduced-precision decode tests share.</summary>
internal static class DecodeTestModels
{
    public static TheoryData<string> Kinds => ["memoryformer", "dense", "memoryformer-wide"];

    /// <summary>A random model in eval mode; d = 64 so the AVX-512 kernels (d a multiple of 16) run where the machine has them.
    /// "memoryformer-wide" is one block at d = 448 (K = 112): enough work per gather that the decode step forks when
    /// <c>UseTwoThreadGathers</c> is on, and K's gather is cut at a 128-column tile.</summary>
    public static LanguageModel Model(string kind, int seed)
    {
        random.manual_seed(seed);
        bool wide = kind == "memoryformer-wide";
        var model = new LanguageModel(MemoryFormerConfig.Nano with
        {
            Width = wide ? 448 : 64, Heads = wide ? 7 : 2, Layers = wide ? 1 : MemoryFormerConfig.Nano.Layers, ContextLength = 32, VocabularySize = 300,
            Kind = kind == "dense" ? TransformerKind.Dense : TransformerKind.MemoryFormer,
        });
        model.eval();
        return model;
    }

    /// <summary>The logits of each of <paramref name="tokens"/> fed one at a time through the fused decode step.</summary>
    public static Tensor[] DecodeLogits(LanguageModel model, long[] tokens)
    {
        var caches = model.Backbone.NewCaches(1, CPU);
        var step = FusedDecodeStep.TryCreate(model, caches);
        Assert.NotNull(step);
        var logits = tokens.Select(t => step.Logits((int)t)).ToArray();
        foreach (var c in caches) c.Dispose();
        return logits;
    }

    /// <summary>Asserts that two decodes' logits agree up to fp32 rounding: max |Δ| ≤ 1e-4 · (1 + max |logit|) per token.</summary>
    public static void AssertSameUpToRounding(Tensor[] expected, Tensor[] actual)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            double diff = (actual[i] - expected[i]).abs().max().item<float>(), scale = expected[i].abs().max().item<float>();
            Assert.True(diff <= 1e-4 * (1 + scale), $"token {i}: max |Δ logit| {diff:G3} (scale {scale:G3})");
        }
    }
}
