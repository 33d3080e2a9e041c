using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>The small language models the evaluation commands train (<c>bench blimp</c>, <c>bench lm-tokens</c>):
/// one training recipe, so MemoryFormer and the dense baseline differ only in <see cref="TransformerKind"/>.</summary>
internal static class SmallLanguageModel
{
    /// <summary>Context length of every model here.</summary>
    public const int ContextLength = 128;

    /// <summary>Seed of every model here.</summary>
    public const int Seed = 1337;

    /// <summary>d = <paramref name="width"/>, 4 heads, τ = 8; AdamW at 1e-3 (tables 3e-3), weight decay 0.1, no validation.</summary>
    public static MemoryFormerLanguageModelEstimator.Options Options(TransformerKind kind, int width, int layers, int batchSize, int steps,
        TextTokenizerKind tokenizer, CancellationToken cancellationToken) => new()
    {
        Architecture = new MemoryFormerConfig { Width = width, Layers = layers, Heads = 4, BitsPerChunk = 8, Kind = kind },
        Tokenizer = tokenizer, ContextLength = ContextLength, BatchSize = batchSize, MaxSteps = steps,
        WarmupSteps = Math.Min(50, steps / 10), LearningRate = 1e-3, TableLearningRate = 3e-3, WeightDecay = 0.1,
        ValidationFraction = 0, ValidateEvery = 0, Seed = Seed, CancellationToken = cancellationToken,
    };

    /// <summary>One training or test document.</summary>
    public sealed class Document
    {
        /// <summary>The text.</summary>
        public string Text { get; set; } = "";
    }
}
