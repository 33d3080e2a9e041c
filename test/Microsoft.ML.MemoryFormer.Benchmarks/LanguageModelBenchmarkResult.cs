using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.LanguageModeling;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>One model's numbers in the language-model benchmark (decode speed and samples only at equal steps).</summary>
internal sealed record LanguageModelBenchmarkResult(string Name, TransformerKind Kind, long Parameters, LanguageModelMetrics Validation,
    double TrainTokensPerSecond, double? DecodeTokensPerSecond, IReadOnlyList<double> LossHistory, IReadOnlyList<string> Samples)
{
    /// <summary>Steps trained.</summary>
    public int Steps { get; init; }

    /// <summary>Training seconds on the training loop's clock (no tokenising, no closing evaluation).</summary>
    public double TrainSeconds { get; init; }

    /// <summary>What fixed the steps: "1500 steps", "reference: 1500 steps" or "equal time (… s of Dense)".</summary>
    public string Budget { get; init; } = "";

    /// <summary>The machine's 1-minute load average when the model finished training.</summary>
    public double LoadAverage { get; init; }

    /// <summary>With <c>--bucket-usage</c>, a MemoryFormer's bucket health on the validation text (<see cref="LanguageModelEval.BucketHealth"/>); else empty.</summary>
    public string Buckets { get; init; } = "";
}
