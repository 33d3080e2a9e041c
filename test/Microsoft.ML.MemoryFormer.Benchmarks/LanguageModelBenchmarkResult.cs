using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.LanguageModeling;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>One model's numbers in the language-model benchmark.</summary>
internal sealed record LanguageModelBenchmarkResult(string Name, TransformerKind Kind, long Parameters, LanguageModelMetrics Validation,
    double TrainTokensPerSecond, double DecodeTokensPerSecond, IReadOnlyList<double> LossHistory, IReadOnlyList<string> Samples);
