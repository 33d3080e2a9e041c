using System.Text.Json.Serialization;
using Microsoft.ML.MemoryFormer.Configuration;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>Optimisation settings shared by every task (language model, classification, regression).</summary>
public sealed record TrainingOptions
{
    /// <summary>Optimizer steps to run.</summary>
    public int MaxSteps { get; init; } = 1000;

    /// <summary>Peak learning rate of dense parameters (embedding, head, norms, biases).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>
    /// Peak learning rate of Memory Layer tables. The paper trains the whole model at 3× the learning rate of the Pythia
    /// model of the same size (because each table row gets a gradient only in the steps that hit it), and the official
    /// code's configs use one rate, 3e-3, for every parameter. A separate table rate, 3× the dense default, is this
    /// library's choice: it keeps the paper's higher rate for the tables without raising it for the embedding and head.
    /// </summary>
    public double TableLearningRate { get; init; } = 3e-3;

    /// <summary>Decoupled weight decay of dense matrices (biases and norm gains never decay).</summary>
    public double WeightDecay { get; init; } = 0.1;

    /// <summary>Decoupled weight decay of the tables (0.1 in the code; rarely hit rows shrink, spec §5.3 pitfall 3).</summary>
    public double TableWeightDecay { get; init; } = 0.1;

    /// <summary>
    /// Lazy table updates: table rows that no token hit in a step keep their value and Adam moments unchanged (no
    /// decay, no momentum drift). Cheaper for small batches and closer to a sparse optimiser; the paper's
    /// training used dense AdamW, which keeps moving and decaying every row (spec §5.3 pitfall 3). Default false.
    /// </summary>
    public bool LazyTableUpdates { get; init; }

    /// <summary>
    /// Storage of the tables' Adam moments. <see cref="MomentPrecision.BFloat16"/> halves their memory (8 → 4 bytes per
    /// table parameter, 1.7 GB less for the d = 512, 6-layer model) and moves 16 instead of 24 bytes per table parameter
    /// in every optimizer step where the update runs inside the backward (<c>TableGradientClipping</c> other than Global;
    /// 20 instead of 28 in the separate step); the moments are rounded stochastically, so they stay unbiased. Dense
    /// parameters keep fp32 moments. Null (the default) takes <see cref="DefaultTableMomentPrecision"/> (<c>BFloat16</c>)
    /// for a new run whose tables take the managed CPU kernels, <c>Float32</c> for any other new run (CUDA, other dtypes,
    /// fused kernels off: there torch rounds the moments to nearest, which can freeze a slowly moving moment), and the
    /// checkpoint's own precision when the run resumes from <see cref="CheckpointPath"/> (a checkpoint written when
    /// <c>Float32</c> was the default goes on with <c>Float32</c>, and the loop logs it).
    /// </summary>
    /// <remarks>A checkpoint's run fingerprint records the precision the run uses, except <c>Float32</c>, which it leaves
    /// out as checkpoints did before the option existed. Set explicitly to a precision other than the checkpoint's, the
    /// run is refused as another training run (the optimizer state would not fit).</remarks>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public MomentPrecision? TableMomentPrecision { get; init; }

    /// <summary>
    /// Mixed-precision Memory Layers: while this training runs, each Memory Layer's forward reads a bfloat16 copy of its table
    /// instead of the fp32 table (the optimizer still updates the fp32 table, and sums are accumulated in fp32), which halves the
    /// bytes of the forward's table reads. The copy is rounded to nearest (ties to even), written row by row by the table update
    /// inside the backward and rebuilt whenever the table changed otherwise, so it is never stale; the weight gradient uses the
    /// same rounded rows. Applies on the CPU with the managed kernels (<c>TorchRuntime.UseFusedKernels</c>) where libtorch's
    /// version counter can be read (Linux); elsewhere the forward reads fp32. Costs half the tables' size in memory for the run.
    /// Default false: with the backward's bf16 gradient rows as well, the byte-level LM benchmark ended 2.2733 / 2.3075 / 2.2712
    /// bits/byte at 1,500 steps on three seeds against 2.2525 / 2.2814 / 2.2924 without (mean +0.009: within the seed-to-seed
    /// spread, but above the project's quality bar on the recorded seed; docs/benchmarks.md, "Mixed-precision training").
    /// Validation and inference after training read the fp32 tables.
    /// </summary>
    /// <remarks>Recorded in a checkpoint's run fingerprint when true, like <see cref="TableMomentPrecision"/>: a run resumed with
    /// another value is refused as another training run.</remarks>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool MixedPrecisionTables { get; init; }

    /// <summary>The moments' precision of a new run on the managed CPU kernels whose <see cref="TableMomentPrecision"/> is
    /// null: <c>BFloat16</c> (docs/benchmarks.md: the same LM quality as fp32 at 1,500 steps, 1.7 GB less memory at
    /// d = 512 and a third less memory traffic in every table update).</summary>
    public const MomentPrecision DefaultTableMomentPrecision = MomentPrecision.BFloat16;

    /// <summary>
    /// The clip factor of the tables' update (see <see cref="Training.TableGradientClipping"/>); null (the default) takes
    /// <see cref="DefaultTableGradientClipping"/> (<c>PreviousStep</c>) for a new run, and the checkpoint's own rule when
    /// the run resumes from <see cref="CheckpointPath"/> (a checkpoint written when <c>Global</c> was the default goes on
    /// with <c>Global</c>, and the loop logs it). <c>PreviousStep</c> and <c>None</c> let the fused CPU backward update
    /// each table block while its gradient is in cache (no table-gradient write; docs/benchmarks.md, "Probe");
    /// <c>Global</c> clips every parameter by this step's global gradient norm. Dense parameters are clipped by the
    /// global norm in every mode.
    /// </summary>
    /// <remarks>A checkpoint's run fingerprint records the rule the run uses, except <c>Global</c>, which it leaves out as
    /// checkpoints did before the option existed. Set explicitly to a rule other than the checkpoint's, the run is
    /// refused as another training run; with <c>PreviousStep</c> or <c>None</c> the checkpoint also keeps the previous
    /// step's factor.</remarks>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public TableGradientClipping? TableGradientClipping { get; init; }

    /// <summary>The rule of a new run whose <see cref="TableGradientClipping"/> is null: <c>PreviousStep</c>.</summary>
    public const TableGradientClipping DefaultTableGradientClipping = Training.TableGradientClipping.PreviousStep;

    /// <summary>The rule this run applies: <see cref="TableGradientClipping"/>, or <see cref="DefaultTableGradientClipping"/>
    /// when null (the training loop has already replaced null by the checkpoint's rule when it resumes one).</summary>
    internal TableGradientClipping TableClippingRule => TableGradientClipping ?? DefaultTableGradientClipping;

    /// <summary>Adam β₁.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Adam β₂ (0.95 as in the code and Pythia).</summary>
    public double Beta2 { get; init; } = 0.95;

    /// <summary>Adam ε.</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Global gradient-norm clip; 0 turns clipping off.</summary>
    public double GradientClip { get; init; } = 1.0;

    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 50;

    /// <summary>Linear warm-up steps of the tables' rate (<see cref="TableLearningRate"/>), after which their cosine decay
    /// starts; null (the default) takes <see cref="WarmupSteps"/>, one schedule for every parameter.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int? TableWarmupSteps { get; init; }

    /// <summary>The cosine schedule ends at this fraction of the peak rates.</summary>
    public double MinLearningRateRatio { get; init; } = 0.1;

    /// <summary>
    /// Weight averaging (Polyak averaging, an exponential moving average of the parameters): null (the default) = off;
    /// otherwise the decay d in [0, 1). After optimizer step n every parameter's average is Σₖ dⁿ⁻ᵏ·wₖ / Σₖ dⁿ⁻ᵏ over
    /// its values wₖ after steps k = 1…n (an exponential moving average, bias-corrected as Adam's moments are, so the
    /// random initialisation has no share in it); it spans about 1 / (1 − d) recent steps. Validation and early stopping score the averaged weights, the best
    /// weights kept are averaged ones, and the trained model holds the average at the end. Every parameter is averaged,
    /// Memory Layer tables included (one more copy of the parameters in memory, and one elementwise pass over them per
    /// step after the optimizer's update); the training trajectory itself is unchanged (the same losses as without).
    /// Checkpoints carry the average, so a resumed run repeats the uninterrupted one bit for bit. Off by default: on adult
    /// (Medium, 4 epochs of a cosine schedule) decays 0.98–0.995 lowered development accuracy by 0.16–0.29 points, and on
    /// housing it helped single models but not the trainer's 5-model ensemble (docs/benchmarks.md, "Tabular: adult, round 7").
    /// </summary>
    /// <remarks>Recorded in a checkpoint's run fingerprint when set: a run resumed with another value is refused as another
    /// training run.</remarks>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double? WeightAveragingDecay { get; init; }

    /// <summary>Run validation every this many steps (and after the last); 0 = only at the end.</summary>
    public int ValidateEvery { get; init; }

    /// <summary>Stop after this many validations in a row that neither raised the metric nor lowered the loss, and restore
    /// the weights of the best metric (ties: the lower loss); 0 = off. A falling loss keeps the run going while the metric,
    /// noisy on a small hold-out, stalls.</summary>
    public int EarlyStoppingPatience { get; init; }

    /// <summary>Report progress every this many steps.</summary>
    public int ReportEvery { get; init; } = 10;

    /// <summary>
    /// Seed of each step's randomness: before step s the loop reseeds torch's generator (dropout) from (Seed, s), so a
    /// step's random draws do not depend on the steps before it and a run resumed from a checkpoint repeats them.
    /// </summary>
    public int Seed { get; init; }

    /// <summary>
    /// Checkpoint file of this run; null = no checkpoints. When set, the loop writes the complete training state
    /// (weights, optimizer moments and step counts, loss history, early-stopping state) to it atomically every
    /// <see cref="CheckpointEverySteps"/> steps, every <see cref="CheckpointInterval"/>, when cancelled (after the last
    /// completed step) and at the end; and a run that finds a checkpoint of the same run there resumes from it.
    /// </summary>
    public string? CheckpointPath { get; init; }

    /// <summary>Write a checkpoint every this many steps; 0 = not by step count.</summary>
    public int CheckpointEverySteps { get; init; }

    /// <summary>Write a checkpoint after a step when at least this much wall time passed since the last one; null = not by time.</summary>
    public TimeSpan? CheckpointInterval { get; init; }

    /// <summary>Throws naming the first invalid setting.</summary>
    public TrainingOptions Validate()
    {
        Check(MaxSteps > 0, nameof(MaxSteps), "must be positive");
        Check(LearningRate > 0 && TableLearningRate > 0, nameof(LearningRate), "learning rates must be positive");
        Check(WeightDecay >= 0 && TableWeightDecay >= 0, nameof(WeightDecay), "weight decays must be ≥ 0");
        Check(Beta1 is >= 0 and < 1 && Beta2 is >= 0 and < 1, nameof(Beta1), "Adam betas must be in [0, 1)");
        Check(Epsilon > 0, nameof(Epsilon), "must be positive");
        Check(TableMomentPrecision is not { } moments || Enum.IsDefined(moments), nameof(TableMomentPrecision),
            $"must be null (the default) or one of {string.Join(", ", Enum.GetNames<MomentPrecision>())}");
        Check(GradientClip >= 0, nameof(GradientClip), "must be ≥ 0");
        Check(TableGradientClipping is not { } rule || Enum.IsDefined(rule), nameof(TableGradientClipping),
            $"must be null (the default) or one of {string.Join(", ", Enum.GetNames<TableGradientClipping>())}");
        Check(WarmupSteps >= 0, nameof(WarmupSteps), "must be ≥ 0");
        Check(TableWarmupSteps is null or >= 0, nameof(TableWarmupSteps), "must be null (WarmupSteps) or ≥ 0");
        Check(WeightAveragingDecay is not { } decay || decay is >= 0 and < 1, nameof(WeightAveragingDecay),
            "must be null (off, the default) or in [0, 1)");
        Check(MinLearningRateRatio is >= 0 and <= 1, nameof(MinLearningRateRatio), "must be in [0, 1]");
        Check(ValidateEvery >= 0 && EarlyStoppingPatience >= 0 && ReportEvery > 0, nameof(ValidateEvery),
            "ValidateEvery and EarlyStoppingPatience must be ≥ 0, ReportEvery positive");
        Check(CheckpointPath is null || !string.IsNullOrWhiteSpace(CheckpointPath), nameof(CheckpointPath), "must be null or a file path");
        Check(CheckpointEverySteps >= 0, nameof(CheckpointEverySteps), "must be ≥ 0");
        Check(CheckpointInterval is null || CheckpointInterval > TimeSpan.Zero, nameof(CheckpointInterval), "must be positive when set");
        return this;
    }

    private static void Check(bool ok, string name, string rule)
    {
        if (!ok) throw new ArgumentOutOfRangeException(name, $"TrainingOptions.{name} {rule}.");
    }
}
