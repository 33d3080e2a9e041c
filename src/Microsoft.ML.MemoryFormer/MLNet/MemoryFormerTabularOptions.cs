using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Options of the MemoryFormer trainers on a Features vector (regression, binary and multiclass classification).
/// Defaults suit a few thousand to a few hundred thousand rows of up to ~100 slots on a CPU.
/// </summary>
public sealed class MemoryFormerTabularOptions
{
    /// <summary>The known-size Single vector column to learn from (NaN = missing value).</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>The label: Single for regression, Boolean for binary, a UInt32 key for multiclass.</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>The architecture (width, blocks, heads, τ, dropout); its context length is set from the feature count.</summary>
    public MemoryFormerConfig Architecture { get; set; } = TabularPresets.Small;

    /// <summary>Rows per optimizer step.</summary>
    public int BatchSize { get; set; } = 256;

    /// <summary>Passes over the training rows at most (early stopping may end sooner).</summary>
    public int MaxEpochs { get; set; } = 30;

    /// <summary>Peak learning rate of dense parameters; Memory Layer tables use 3× (paper §4.1).</summary>
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>Decoupled weight decay of dense matrices.</summary>
    public double WeightDecay { get; set; } = 1e-5;

    /// <summary>Storage of the tables' Adam moments; <see cref="MomentPrecision.BFloat16"/> halves their memory and speeds up the
    /// table update (see <see cref="TrainingOptions.TableMomentPrecision"/>). Default fp32.</summary>
    public MomentPrecision TableMomentPrecision { get; set; } = MomentPrecision.Float32;

    /// <summary>Rows to validate on after every epoch; when null, <see cref="ValidationFraction"/> of the training rows are held out.</summary>
    public IDataView? ValidationSet { get; set; }

    /// <summary>Fraction of training rows held out for validation when <see cref="ValidationSet"/> is null; 0 = none.</summary>
    public double ValidationFraction { get; set; } = 0.1;

    /// <summary>Stop after this many epochs without a better validation metric (accuracy, or −RMSE) and keep the best weights; 0 = off.</summary>
    public int EarlyStoppingPatience { get; set; } = 5;

    /// <summary>Seed of initialisation, shuffling, dropout and the validation hold-out; null = drawn from the MLContext's seed.
    /// The device comes from <see cref="MLContext.GpuDeviceId"/> and <see cref="MLContext.FallbackToCpu"/>.</summary>
    public int? Seed { get; set; }

    /// <summary>Receives a report after every epoch (loss, validation loss, rows/s, time left).</summary>
    public IProgress<TrainingProgress>? Progress { get; set; }

    /// <summary>Receives one log line per report.</summary>
    public Action<string>? Log { get; set; }

    /// <summary>Stops Fit before the next step with <see cref="OperationCanceledException"/> (as ML.NET's own cancellation,
    /// <c>ICancelable.CancelExecution</c>, does). With <see cref="CheckpointPath"/> set, the last completed step is checkpointed first. Default none.</summary>
    public CancellationToken CancellationToken { get; set; }

    /// <summary>
    /// Checkpoint file of the run; null (the default) writes none. When set, Fit writes the whole training state
    /// (weights, optimizer moments, step, loss history, early-stopping state) to it atomically every
    /// <see cref="CheckpointEverySteps"/> steps, every <see cref="CheckpointInterval"/>, when cancelled and at the end;
    /// and when the file already holds a checkpoint of the same run (same architecture, options, seed and data) Fit
    /// resumes from it, reaching bit-identical weights and losses (a finished run's checkpoint returns the same model at
    /// once). A checkpoint of another run makes Fit throw an <see cref="InvalidOperationException"/> naming what differs.
    /// Set <see cref="Seed"/>: the run's identity includes it.
    /// </summary>
    public string? CheckpointPath { get; set; }

    /// <summary>Write a checkpoint every this many optimizer steps; 0 (the default) = not by step count.</summary>
    public int CheckpointEverySteps { get; set; }

    /// <summary>Write a checkpoint after a step when this much wall time passed since the last one; null (the default) = not by time.</summary>
    public TimeSpan? CheckpointInterval { get; set; }

    internal MemoryFormerTabularOptions Validate()
    {
        Architecture.Validate();
        Check(!string.IsNullOrEmpty(FeatureColumnName) && !string.IsNullOrEmpty(LabelColumnName), nameof(FeatureColumnName),
            "FeatureColumnName and LabelColumnName must be set");
        Check(BatchSize > 0, nameof(BatchSize), "must be positive");
        Check(MaxEpochs > 0, nameof(MaxEpochs), "must be positive");
        Check(LearningRate > 0, nameof(LearningRate), "must be positive");
        Check(WeightDecay >= 0, nameof(WeightDecay), "must be ≥ 0");
        Check(Enum.IsDefined(TableMomentPrecision), nameof(TableMomentPrecision), $"must be one of {string.Join(", ", Enum.GetNames<MomentPrecision>())}");
        Check(ValidationFraction is >= 0 and < 1, nameof(ValidationFraction), "must be in [0, 1)");
        Check(EarlyStoppingPatience >= 0, nameof(EarlyStoppingPatience), "must be ≥ 0");
        Check(CheckpointPath is null || !string.IsNullOrWhiteSpace(CheckpointPath), nameof(CheckpointPath), "must be null or a file path");
        Check(CheckpointEverySteps >= 0, nameof(CheckpointEverySteps), "must be ≥ 0");
        Check(CheckpointInterval is null || CheckpointInterval > TimeSpan.Zero, nameof(CheckpointInterval), "must be positive when set");
        return this;
    }

    private static void Check(bool ok, string name, string rule)
    {
        if (!ok) throw new ArgumentOutOfRangeException(name, $"MemoryFormerTabularOptions.{name} {rule}.");
    }
}
