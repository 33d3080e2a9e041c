namespace Microsoft.ML.MemoryFormer.Benchmarks.Classification;

/// <summary>One row of the classification benchmark table.</summary>
internal sealed record ClassificationResult(string Dataset, string Model, int TrainRows, int TestRows, double MicroAccuracy,
    double MacroAccuracy, double LogLoss, TimeSpan TrainingTime, double ScoringRowsPerSecond, string Notes);
