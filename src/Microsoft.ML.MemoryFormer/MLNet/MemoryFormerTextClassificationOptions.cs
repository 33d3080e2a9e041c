using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Options of the MemoryFormer text classifiers (<c>mlContext.MulticlassClassification.Trainers.MemoryFormer</c> and
/// <c>mlContext.BinaryClassification.Trainers.MemoryFormer</c>). Every field has a default that trains a small encoder
/// from scratch on a CPU; the device follows <see cref="MLContext.GpuDeviceId"/> and <see cref="MLContext.FallbackToCpu"/>.
/// </summary>
public sealed class MemoryFormerTextClassificationOptions
{
    /// <summary>The label column: a key (multiclass; apply MapValueToKey first) or a Boolean (binary). Default "Label".</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>The text column to classify. Default "Text".</summary>
    public string TextColumnName { get; set; } = "Text";

    /// <summary>An optional second text column for sentence pairs; the two texts are joined with a separator token.</summary>
    public string? SecondTextColumnName { get; set; }

    /// <summary>Name of the Score output column. Default "Score".</summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>Name of the PredictedLabel output column. Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <summary>
    /// The encoder's architecture (width, blocks, heads, τ, MemoryFormer or dense); null = a small preset
    /// (d = 128, 2 blocks, 4 heads, τ = 8). Its vocabulary size and context length are set from the tokenizer and
    /// <see cref="MaxTokensPerRow"/>. Ignored with a pretrained backbone, whose architecture is kept.
    /// </summary>
    public MemoryFormerConfig? Architecture { get; set; }

    /// <summary>The tokenizer; null = GPT-2's byte-pair encoding, or the pretrained checkpoint's tokenizer.</summary>
    public ITextTokenizer? Tokenizer { get; set; }

    /// <summary>
    /// Longest token row, start and separator tokens included (default 128). Truncation policy: each text keeps its
    /// first tokens; for sentence pairs the longer text is shortened first. Only a window at the head of a long text is
    /// tokenized, so a 1 MB row costs about as much as a short one (docs/reliability.md, "Bad data"). Batches are padded
    /// to their longest row only.
    /// </summary>
    public int MaxTokensPerRow { get; set; } = 128;

    /// <summary>How the row's hidden states are pooled before the linear head (default mean over real tokens).</summary>
    public PoolingKind Pooling { get; set; } = PoolingKind.Mean;

    /// <summary>Rows per optimizer step, and per scoring batch ×2. Default 32.</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>Passes over the training rows. Default 10.</summary>
    public int Epochs { get; set; } = 10;

    /// <summary>Peak learning rate of dense parameters (embedding, head, norms). Default 1e-3.</summary>
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>Peak learning rate of Memory Layer tables (the paper uses 3× the dense rate). Default 3e-3.</summary>
    public double TableLearningRate { get; set; } = 3e-3;

    /// <summary>Decoupled weight decay of matrices and tables (biases and norm gains never decay). Default 0.01.</summary>
    public double WeightDecay { get; set; } = 0.01;

    /// <summary>Storage of the tables' Adam moments; <see cref="MomentPrecision.BFloat16"/> halves their memory and speeds up the
    /// table update (see <see cref="TrainingOptions.TableMomentPrecision"/>). Default fp32.</summary>
    public MomentPrecision TableMomentPrecision { get; set; } = MomentPrecision.Float32;

    /// <summary>Fraction of all steps spent warming the learning rates up linearly, before a cosine decay. Default 0.1.</summary>
    public double WarmupFraction { get; set; } = 0.1;

    /// <summary>Dropout in the blocks and before the head. Default 0.1.</summary>
    public double Dropout { get; set; } = 0.1;

    /// <summary>
    /// Rows scored after every epoch (the whole set): log-loss and accuracy are logged and reported through
    /// <see cref="Progress"/>. It must have gone through the same preprocessing as the training data (same key mapping).
    /// </summary>
    public IDataView? ValidationSet { get; set; }

    /// <summary>Stop after this many epochs without a better validation accuracy and keep the best weights; 0 = off. Needs <see cref="ValidationSet"/>.</summary>
    public int EarlyStoppingPatience { get; set; }

    /// <summary>How classes are weighted in the loss (default none; <see cref="ClassWeighting.Balanced"/> for imbalanced labels).</summary>
    public ClassWeighting ClassWeighting { get; set; }

    /// <summary>Explicit loss weight per class (index = key − 1; binary: [false, true]); overrides <see cref="ClassWeighting"/>.</summary>
    public float[]? ClassWeights { get; set; }

    /// <summary>Seed of initialisation, dropout and batch order; null = drawn from the MLContext's seed.</summary>
    public int? Seed { get; set; }

    /// <summary>
    /// A checkpoint file saved by the MemoryFormer language-model trainer (config, tokenizer, weights): its backbone
    /// and tokenizer are fine-tuned with a new head.
    /// </summary>
    public string? PretrainedCheckpointPath { get; set; }

    /// <summary>A language model in memory whose backbone is fine-tuned (set <see cref="Tokenizer"/> to its tokenizer).</summary>
    public LanguageModel? PretrainedModel { get; set; }

    /// <summary>Receives progress after every epoch (with validation metrics when a validation set is given).</summary>
    public IProgress<TrainingProgress>? Progress { get; set; }

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

    internal void Validate()
    {
        static void Check(bool ok, string name, string rule)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, $"MemoryFormerTextClassificationOptions.{name} {rule}.");
        }
        Check(!string.IsNullOrEmpty(LabelColumnName) && !string.IsNullOrEmpty(TextColumnName), nameof(TextColumnName), "and LabelColumnName must be set");
        Check(MaxTokensPerRow >= 3, nameof(MaxTokensPerRow), "must be at least 3");
        Check(BatchSize > 0, nameof(BatchSize), "must be positive");
        Check(Epochs > 0, nameof(Epochs), "must be positive");
        Check(WarmupFraction is >= 0 and < 1, nameof(WarmupFraction), "must be in [0, 1)");
        Check(Dropout is >= 0 and < 1, nameof(Dropout), "must be in [0, 1)");
        Check(Enum.IsDefined(TableMomentPrecision), nameof(TableMomentPrecision), $"must be one of {string.Join(", ", Enum.GetNames<MomentPrecision>())}");
        Check(EarlyStoppingPatience >= 0, nameof(EarlyStoppingPatience), "must be ≥ 0");
        Check(EarlyStoppingPatience == 0 || ValidationSet is not null, nameof(EarlyStoppingPatience), "needs a ValidationSet");
        Check(PretrainedModel is null || PretrainedCheckpointPath is null, nameof(PretrainedModel), "and PretrainedCheckpointPath cannot both be set");
        Check(CheckpointPath is null || !string.IsNullOrWhiteSpace(CheckpointPath), nameof(CheckpointPath), "must be null or a file path");
        Check(CheckpointEverySteps >= 0, nameof(CheckpointEverySteps), "must be ≥ 0");
        Check(CheckpointInterval is null || CheckpointInterval > TimeSpan.Zero, nameof(CheckpointInterval), "must be positive when set");
    }

    internal TextClassifierSettings ToSettings(int seed) => new()
    {
        Architecture = Architecture, Tokenizer = Tokenizer, MaxTokensPerRow = MaxTokensPerRow, Pooling = Pooling,
        BatchSize = BatchSize, Epochs = Epochs, LearningRate = LearningRate, TableLearningRate = TableLearningRate,
        WeightDecay = WeightDecay, TableMomentPrecision = TableMomentPrecision, WarmupFraction = WarmupFraction, Dropout = Dropout,
        EarlyStoppingPatience = EarlyStoppingPatience, ClassWeighting = ClassWeighting, ClassWeights = ClassWeights,
        Seed = seed, PretrainedCheckpointPath = PretrainedCheckpointPath, PretrainedModel = PretrainedModel,
        CheckpointPath = CheckpointPath, CheckpointEverySteps = CheckpointEverySteps, CheckpointInterval = CheckpointInterval,
    };
}
