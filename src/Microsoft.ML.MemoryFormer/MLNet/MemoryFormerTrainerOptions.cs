using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The options every MemoryFormer trainer shares (language model, text classification, tabular): seed, run length,
/// learning rates, validation and early stopping, progress, cancellation and checkpoints. Each task's options derive
/// from it and set their own defaults; <see cref="ToTrainingOptions"/> is the one mapping onto the training loop's
/// <see cref="TrainingOptions"/>, so a new shared option is added here and nowhere else.
/// </summary>
public abstract class MemoryFormerTrainerOptions
{
    private protected MemoryFormerTrainerOptions()
    {
    }

    /// <summary>Seed of initialisation, batch order, dropout and the validation hold-out; null takes the MLContext's
    /// seed, and a random one when the MLContext has none (as ML.NET does).</summary>
    public int? Seed;

    /// <summary>Passes over the training rows (or windows), used when <see cref="MaxSteps"/> is null.</summary>
    public int Epochs = 1;

    /// <summary>Optimizer steps; overrides <see cref="Epochs"/> when set. Default null.</summary>
    public int? MaxSteps;

    /// <summary>Rows (or windows) per optimizer step.</summary>
    public int BatchSize = 32;

    /// <summary>Peak learning rate of dense parameters (embedding, head, norms). Default 1e-3.</summary>
    public double LearningRate = 1e-3;

    /// <summary>Peak learning rate of the Memory Layer tables; null (the default) takes 3 × <see cref="LearningRate"/>.
    /// The separate table rate is this library's choice: the paper trains the whole model at 3× the rate of the Pythia
    /// model of the same size, and the official configs use one rate for every parameter (docs/model-spec.md, "Training").</summary>
    public double? TableLearningRate;

    /// <summary>Decoupled weight decay of dense matrices (biases and norm gains never decay).</summary>
    public double WeightDecay = 0.01;

    /// <summary>Decoupled weight decay of the Memory Layer tables; null (the default) keeps each trainer's rule:
    /// <see cref="WeightDecay"/> for the language model and the text classifier (the official code decays the tables like
    /// every other matrix), 0 for the tabular trainer. Dense AdamW decays every row every step, so rows the hash rarely
    /// selects shrink toward zero over long runs (docs/model-spec.md, "Training"); 0 turns that off for the tables only.</summary>
    public double? TableWeightDecay;

    /// <summary>Linear warm-up steps of the tables' learning rate alone, after which their cosine decay starts; null (the
    /// default) gives the tables the trainer's warm-up, one schedule for every parameter. See
    /// <see cref="TrainingOptions.TableWarmupSteps"/>.</summary>
    public int? TableWarmupSteps;

    /// <summary>Lazy table updates: a table row that no token selected in a step keeps its value and Adam moments (no
    /// decay, no momentum drift), unlike the dense AdamW of the paper and the official code. Default false; the table
    /// update then runs after the backward instead of inside it (slower). See <see cref="TrainingOptions.LazyTableUpdates"/>.</summary>
    public bool LazyTableUpdates;

    /// <summary>Where the cosine learning-rate schedule ends, as a fraction in [0, 1] of the peak rates (both
    /// <see cref="LearningRate"/> and the table rate); null (the default) keeps the training loop's 0.1
    /// (<see cref="TrainingOptions.MinLearningRateRatio"/>). 0 decays to zero, 1 holds the peak rate after warm-up.</summary>
    public double? MinLearningRateRatio;

    /// <summary>
    /// Weight averaging: null (the default) = off; otherwise the decay d in [0, 1) of an exponential moving average of
    /// the weights (Polyak averaging), updated after every optimizer step and spanning about 1 / (1 − d) recent steps
    /// (bias-corrected as Adam's moments are: the initial weights have no share in it). Validation, early stopping and
    /// the trained model use the averaged weights; training itself follows the same path as without. Costs one more copy
    /// of the weights in memory (Memory Layer tables included) and one pass over them per step. See
    /// <see cref="TrainingOptions.WeightAveragingDecay"/>.
    /// </summary>
    public double? WeightAveragingDecay;

    /// <summary>Storage of the tables' Adam moments; <see cref="MomentPrecision.BFloat16"/> halves their memory and speeds
    /// up the table update. Null (the default) takes <c>BFloat16</c> for a new run on the CPU kernels (<c>Float32</c> on
    /// CUDA) and the checkpoint's own precision
    /// when the run resumes from <see cref="CheckpointPath"/> (a checkpoint written when <c>Float32</c> was the default
    /// continues with <c>Float32</c>); see <see cref="TrainingOptions.TableMomentPrecision"/>.</summary>
    public MomentPrecision? TableMomentPrecision;

    /// <summary>The clip factor of the tables' update: the previous step's global norm
    /// (<see cref="Training.TableGradientClipping.PreviousStep"/>), this step's (<see cref="Training.TableGradientClipping.Global"/>)
    /// or none. Null (the default) takes <c>PreviousStep</c> for a new run, which lets the CPU backward update the tables in
    /// place, faster, and the checkpoint's own rule when the run resumes from <see cref="CheckpointPath"/> (a checkpoint
    /// written when <c>Global</c> was the default continues with <c>Global</c>); see <see cref="TrainingOptions.TableGradientClipping"/>.</summary>
    public TableGradientClipping? TableGradientClipping;

    /// <summary>Mixed-precision Memory Layers while training: the forward reads a bfloat16 copy of each table that the table
    /// update keeps current, halving the forward's table reads; the fp32 tables are what the optimizer updates and what the
    /// trained model scores with. Default false; see <see cref="TrainingOptions.MixedPrecisionTables"/> for where it applies
    /// and the quality it was measured at.</summary>
    public bool MixedPrecisionTables;

    /// <summary>Data validated during training (same columns and preprocessing as the training data); when null,
    /// <see cref="ValidationFraction"/> of the training data is held out. Default null.</summary>
    public IDataView? ValidationSet;

    /// <summary>Fraction of the training data held out for validation when <see cref="ValidationSet"/> is null; 0 = none.
    /// The language model holds out the last windows; the text and tabular trainers hold out a seeded random sample of
    /// rows, and only when <see cref="EarlyStoppingPatience"/> is on.</summary>
    public double ValidationFraction;

    /// <summary>Stop after this many validations in a row that neither raised the metric (accuracy, −RMSE) nor lowered the
    /// validation loss, and keep the weights of the best metric; 0 = off. Counting the loss too keeps a run going while
    /// accuracy on a small hold-out wanders up and down within its noise (docs/benchmarks.md, "Early stopping counts the
    /// loss too").</summary>
    public int EarlyStoppingPatience;

    /// <summary>Receives step, loss, validation metrics, items/s and the time left at every report. Default null.</summary>
    public IProgress<TrainingProgress>? Progress;

    /// <summary>Receives each log line (they also go to the MLContext's <c>Log</c> event). Default null.</summary>
    public Action<string>? Log;

    /// <summary>Stops Fit before the next step with <see cref="OperationCanceledException"/> (as ML.NET's own cancellation,
    /// <c>ICancelable.CancelExecution</c>, does); Fit then disposes the model it built. With <see cref="CheckpointPath"/>
    /// set, the last completed step is checkpointed first. Default none.</summary>
    public CancellationToken CancellationToken;

    /// <summary>
    /// Checkpoint file of the run; null (the default) writes none. When set, Fit writes the whole training state
    /// (weights, optimizer moments, step, loss history, validation and early-stopping state) to it atomically every
    /// <see cref="CheckpointEverySteps"/> steps, every <see cref="CheckpointInterval"/>, when cancelled and at the end;
    /// and when the file already holds a checkpoint of the same run (same architecture, options, seed and data) Fit
    /// resumes from it ("resumed from step k" in the log), reaching bit-identical weights and losses; a finished run's
    /// checkpoint returns the same model at once. A checkpoint of another run makes Fit throw an
    /// <see cref="InvalidOperationException"/> naming what differs. Set <see cref="Seed"/> (or the MLContext's seed):
    /// the run's identity includes it. A text classifier that fits its temperature and then trains again on every row
    /// (the default without a validation set) checkpoints its first run to <c>{CheckpointPath}.calibration</c>.
    /// </summary>
    public string? CheckpointPath;

    /// <summary>Write a checkpoint every this many optimizer steps; 0 (the default) = not by step count.</summary>
    public int CheckpointEverySteps;

    /// <summary>Write a checkpoint after a step when this much wall time passed since the last one; null (the default) =
    /// not by time.</summary>
    public TimeSpan? CheckpointInterval;

    /// <summary>The name the error messages give these options, e.g. <c>MemoryFormerTabularOptions</c>.</summary>
    private protected abstract string OptionsName { get; }

    /// <summary>Throws an <see cref="ArgumentOutOfRangeException"/> naming the first invalid option.</summary>
    internal virtual void Validate()
    {
        Check(Epochs >= 1, nameof(Epochs), "must be at least 1");
        Check(MaxSteps is null or >= 1, nameof(MaxSteps), "must be at least 1 when set");
        Check(BatchSize >= 1, nameof(BatchSize), "must be at least 1");
        Check(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), "must be a positive number");
        Check(TableLearningRate is null || (TableLearningRate > 0 && double.IsFinite(TableLearningRate.Value)),
            nameof(TableLearningRate), "must be null or a positive number");
        Check(WeightDecay >= 0 && double.IsFinite(WeightDecay), nameof(WeightDecay), "must be ≥ 0");
        Check(TableWeightDecay is not { } tableDecay || (tableDecay >= 0 && double.IsFinite(tableDecay)), nameof(TableWeightDecay),
            "must be null (the trainer's rule) or ≥ 0");
        Check(TableWarmupSteps is null or >= 0, nameof(TableWarmupSteps), "must be null (the trainer's warm-up) or ≥ 0");
        Check(MinLearningRateRatio is not { } floor || floor is >= 0 and <= 1, nameof(MinLearningRateRatio),
            "must be null (the default, 0.1) or in [0, 1]");
        Check(TableMomentPrecision is not { } moments || Enum.IsDefined(moments), nameof(TableMomentPrecision),
            $"must be null (the default) or one of {string.Join(", ", Enum.GetNames<MomentPrecision>())}");
        Check(TableGradientClipping is not { } rule || Enum.IsDefined(rule), nameof(TableGradientClipping),
            $"must be null (the default) or one of {string.Join(", ", Enum.GetNames<TableGradientClipping>())}");
        Check(WeightAveragingDecay is not { } decay || decay is >= 0 and < 1, nameof(WeightAveragingDecay),
            "must be null (off, the default) or in [0, 1)");
        Check(ValidationFraction is >= 0 and < 1, nameof(ValidationFraction), "must be in [0, 1)");
        Check(EarlyStoppingPatience >= 0, nameof(EarlyStoppingPatience), "must be ≥ 0");
        Check(CheckpointPath is null || !string.IsNullOrWhiteSpace(CheckpointPath), nameof(CheckpointPath), "must be null or a file path");
        Check(CheckpointEverySteps >= 0, nameof(CheckpointEverySteps), "must be ≥ 0");
        Check(CheckpointInterval is null || CheckpointInterval > TimeSpan.Zero, nameof(CheckpointInterval), "must be positive when set");
    }

    /// <summary>How many of <paramref name="rows"/> training rows (those with a label) the text and tabular trainers hold out
    /// for early stopping: <see cref="ValidationFraction"/> of them, rounded down, when <see cref="EarlyStoppingPatience"/>
    /// is on and no <see cref="ValidationSet"/> is given; 0 otherwise, or when that would leave no row on either side.</summary>
    internal int HeldOutRows(int rows)
    {
        int held = (int)(rows * ValidationFraction);
        return ValidationSet is null && EarlyStoppingPatience > 0 && held >= 1 && rows - held >= 1 ? held : 0;
    }

    /// <summary>
    /// The one mapping of these options onto the training loop's: called by the ML.NET-free trainer once it knows the
    /// optimizer steps of one pass over its data and whether it validates.
    /// </summary>
    /// <param name="seed">The run's seed (this option, or the MLContext's).</param>
    /// <param name="stepsPerEpoch">Optimizer steps in one pass over the training data.</param>
    /// <param name="validated">Whether the run has validation data.</param>
    internal TrainingOptions ToTrainingOptions(int seed, int stepsPerEpoch, bool validated)
    {
        int steps = MaxSteps ?? Epochs * stepsPerEpoch;
        var options = TaskDefaults(new TrainingOptions
        {
            MaxSteps = steps,
            LearningRate = LearningRate,
            TableLearningRate = TableLearningRate ?? 3 * LearningRate,
            WeightDecay = WeightDecay,
            TableWeightDecay = WeightDecay,
            LazyTableUpdates = LazyTableUpdates,
            WeightAveragingDecay = WeightAveragingDecay,
            TableMomentPrecision = TableMomentPrecision,
            TableGradientClipping = TableGradientClipping,
            MixedPrecisionTables = MixedPrecisionTables,
            WarmupSteps = WarmupStepsOf(stepsPerEpoch, steps),
            TableWarmupSteps = TableWarmupSteps,
            ValidateEvery = validated ? stepsPerEpoch : 0,
            EarlyStoppingPatience = validated ? EarlyStoppingPatience : 0,
            ReportEvery = Math.Max(1, stepsPerEpoch),
            Seed = seed,
            CheckpointPath = CheckpointPath,
            CheckpointEverySteps = CheckpointEverySteps,
            CheckpointInterval = CheckpointInterval,
        });
        if (TableWeightDecay is { } tableDecay) options = options with { TableWeightDecay = tableDecay };   // over a task's own rule
        return MinLearningRateRatio is { } floor ? options with { MinLearningRateRatio = floor } : options;
    }

    /// <summary>A log that writes each line to <paramref name="channel"/> (the MLContext's <c>Log</c> event) and to <see cref="Log"/>.</summary>
    internal Action<string> LogTo(IChannel channel) => line =>
    {
        channel.Info(MessageSensitivity.None, line);
        Log?.Invoke(line);
    };

    /// <summary>Linear warm-up steps of a run of <paramref name="steps"/> steps.</summary>
    private protected abstract int WarmupStepsOf(int stepsPerEpoch, int steps);

    /// <summary>A task's own settings on top of the shared mapping (the default keeps it as is).</summary>
    private protected virtual TrainingOptions TaskDefaults(TrainingOptions options) => options;

    /// <summary>Throws naming <paramref name="option"/> and the rule it breaks when <paramref name="ok"/> is false.</summary>
    private protected void Check(bool ok, string option, string rule)
    {
        if (!ok) throw new ArgumentOutOfRangeException(option, $"{OptionsName}.{option} {rule}.");
    }
}
