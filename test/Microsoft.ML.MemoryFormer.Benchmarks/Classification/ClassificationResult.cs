using System.Globalization;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Classification;

/// <summary>One row of the classification benchmark table: <paramref name="TrainRows"/> the model trained on, and
/// <paramref name="HeldOutRows"/> of the training set it held out for early stopping (not trained on).</summary>
internal sealed record ClassificationResult(string Dataset, string Model, int TrainRows, int HeldOutRows, int TestRows, double MicroAccuracy,
    double MacroAccuracy, double LogLoss, TimeSpan TrainingTime, double ScoringRowsPerSecond, string Notes)
{
    /// <summary>Out-of-scope detection on the set's out-of-scope queries (<c>--out-of-scope</c>), the threshold fitted on its
    /// in-scope validation rows; null when not measured.</summary>
    public OutOfScopeMetrics? OutOfScope { get; init; }

    /// <summary>The table's rows cell: "trained / test", or "trained + held out / test" when early stopping held rows out.</summary>
    public string RowsCell => HeldOutRows > 0
        ? string.Create(CultureInfo.InvariantCulture, $"{TrainRows:N0} + {HeldOutRows:N0} held out / {TestRows:N0}")
        : string.Create(CultureInfo.InvariantCulture, $"{TrainRows:N0} / {TestRows:N0}");

    /// <summary>The rows a trainer with <paramref name="options"/> (null: not a MemoryFormer trainer, which holds none out)
    /// trains on, and those it holds out for early stopping, of <paramref name="rows"/> training rows: the trainer's own rule
    /// (<see cref="MemoryFormerTrainerOptions.HeldOutRows"/>).</summary>
    public static (int Trained, int HeldOut) TrainingRows(int rows, MemoryFormerTrainerOptions? options)
    {
        int held = options?.HeldOutRows(rows) ?? 0;
        return (rows - held, held);
    }
}
