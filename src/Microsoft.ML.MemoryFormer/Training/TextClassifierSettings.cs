using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// The model side of a text-classifier run (encoder, tokenizer, head, loss weights, pretrained backbone):
/// <see cref="TextClassifierTraining"/> takes it besides the data, the seed and the optimisation schedule, which the
/// shared trainer options map once (<c>MemoryFormerTrainerOptions.ToTrainingOptions</c>).
/// </summary>
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
    public int MaxWindowsPerRow { get; init; } = 1;
    public WindowLayout WindowLayout { get; init; }
    public InferencePrecision ScoringPrecision { get; init; }
    public bool CalibrateTemperature { get; init; }
    public double CalibrationFraction { get; init; }
    public bool CalibrationRefit { get; init; }
    public double LabelSmoothing { get; init; }
    public PoolingKind Pooling { get; init; } = PoolingKind.Mean;
    public int NgramBuckets { get; init; }
    public int NgramLength { get; init; } = 2;
    public int BatchSize { get; init; } = 32;
    public double Dropout { get; init; } = 0.1;
    public ClassWeighting ClassWeighting { get; init; }
    public float[]? ClassWeights { get; init; }
    public string? PretrainedCheckpointPath { get; init; }
    public LanguageModel? PretrainedModel { get; init; }
    public IReadOnlyList<(string Text, string? Second)>? OutlierTexts { get; init; }
    public double OutlierLossWeight { get; init; } = 0.5;
}
