using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>Everything <see cref="TextClassifierTraining"/> needs besides the data (the ML.NET options map onto it).</summary>
internal sealed record TextClassifierSettings
{
    /// <summary>A small encoder that trains from scratch on a CPU in minutes: d = 128, 2 blocks, 4 heads, τ = 8 (K = 16).</summary>
    public static MemoryFormerConfig DefaultArchitecture { get; } = new()
    {
        Width = 128, Layers = 2, Heads = 4, BitsPerChunk = 8,
    };

    public MemoryFormerConfig? Architecture { get; init; }
    public ITextTokenizer? Tokenizer { get; init; }
    public int MaxTokensPerRow { get; init; } = 128;
    public PoolingKind Pooling { get; init; } = PoolingKind.Mean;
    public int BatchSize { get; init; } = 32;
    public int Epochs { get; init; } = 10;
    public double LearningRate { get; init; } = 1e-3;
    public double TableLearningRate { get; init; } = 3e-3;
    public double WeightDecay { get; init; } = 0.01;
    public MomentPrecision TableMomentPrecision { get; init; }
    public double WarmupFraction { get; init; } = 0.1;
    public double Dropout { get; init; } = 0.1;
    public int EarlyStoppingPatience { get; init; }
    public ClassWeighting ClassWeighting { get; init; }
    public float[]? ClassWeights { get; init; }
    public int Seed { get; init; }
    public string? PretrainedCheckpointPath { get; init; }
    public LanguageModel? PretrainedModel { get; init; }
    public string? CheckpointPath { get; init; }
    public int CheckpointEverySteps { get; init; }
    public TimeSpan? CheckpointInterval { get; init; }
}
