using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The small text classifier the fused scoring encoder's tests score with.</summary>
internal static class ScoringTestModels
{
    /// <summary>A byte-level classifier over <paramref name="classes"/> classes: two 128-wide blocks, 4 heads, τ = 8, mean
    /// pooling, windows of <paramref name="windowTokens"/> tokens, at most 4 a row; weights from <paramref name="seed"/>.</summary>
    public static TextClassifierModel Small(int classes, int seed, int windowTokens = 128)
    {
        TorchRuntime.Seed(seed);
        var tokenizer = new ByteLevelTokenizer();
        var config = MemoryFormerConfig.Nano with
        {
            VocabularySize = tokenizer.ModelVocabularySize, ContextLength = windowTokens, Width = 128, Heads = 4, BitsPerChunk = 8, Layers = 2,
        };
        return new TextClassifierModel(new SequenceClassifier(config, classes, PoolingKind.Mean, 0, 0), tokenizer, windowTokens, CPU, maxWindowsPerRow: 4);
    }
}
