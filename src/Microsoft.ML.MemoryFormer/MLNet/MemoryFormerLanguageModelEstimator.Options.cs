using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.MLNet;

public sealed partial class MemoryFormerLanguageModelEstimator
{
    /// <summary>Settings of <see cref="MemoryFormerTextCatalog.MemoryFormer(Options)"/>; every field has a default.</summary>
    public sealed class Options
    {
        /// <summary>Column of training documents (text). Default <c>"Text"</c>.</summary>
        public string TextColumnName = "Text";

        /// <summary>Column of prompts the fitted transformer continues (text). Default <c>"Prompt"</c>.</summary>
        public string PromptColumnName = "Prompt";

        /// <summary>Column the fitted transformer writes its continuations to. Default <c>"GeneratedText"</c>.</summary>
        public string GeneratedTextColumnName = "GeneratedText";

        /// <summary>Architecture preset or custom config; its vocabulary size and context length are replaced by the
        /// tokenizer's and <see cref="ContextLength"/>. Set <c>Kind = TransformerKind.Dense</c> for the dense baseline.
        /// Default <see cref="MemoryFormerConfig.Small256"/> (d = 256, 4 layers, τ = 8).</summary>
        public MemoryFormerConfig Architecture = MemoryFormerConfig.Small256;

        /// <summary>Tokenizer: byte-level (default, small corpora) or GPT-2 byte-pair encoding.</summary>
        public TextTokenizerKind Tokenizer = TextTokenizerKind.ByteLevel;

        /// <summary>Tokens the model sees at once (T); generation keeps the last T tokens of a prompt. Default 128.</summary>
        public int ContextLength = 128;

        /// <summary>Windows of <see cref="ContextLength"/> + 1 tokens per step. Default 16.</summary>
        public int BatchSize = 16;

        /// <summary>Passes over the training windows, used when <see cref="MaxSteps"/> is null. Default 1.</summary>
        public int Epochs = 1;

        /// <summary>Optimizer steps; overrides <see cref="Epochs"/> when set. Default null.</summary>
        public int? MaxSteps;

        /// <summary>Peak learning rate of dense parameters (embedding, head, norms). Default 1e-3.</summary>
        public double LearningRate = 1e-3;

        /// <summary>Peak learning rate of Memory Layer tables (paper §4.1: 3× the dense rate). Default 3e-3.</summary>
        public double TableLearningRate = 3e-3;

        /// <summary>Decoupled weight decay of dense matrices and tables. Default 0.1.</summary>
        public double WeightDecay = 0.1;

        /// <summary>Linear warm-up steps before the cosine decay. Default 50.</summary>
        public int WarmupSteps = 50;

        /// <summary>Storage of the tables' Adam moments; <see cref="MomentPrecision.BFloat16"/> halves their memory and
        /// speeds up the table update (see <see cref="TrainingOptions.TableMomentPrecision"/>). Default fp32.</summary>
        public MomentPrecision TableMomentPrecision = MomentPrecision.Float32;

        /// <summary>Validation documents (same text column). When null, the last <see cref="ValidationFraction"/> of the
        /// training windows is held out. Default null.</summary>
        public IDataView? ValidationSet;

        /// <summary>Tail fraction of the windows held out for validation when <see cref="ValidationSet"/> is null; 0 turns
        /// validation off. Default 0.05.</summary>
        public double ValidationFraction = 0.05;

        /// <summary>Validate every this many steps (and after the last); 0 = only at the end. Default 100.</summary>
        public int ValidateEvery = 100;

        /// <summary>Report progress (log and <see cref="Progress"/>) every this many steps. Default 10.</summary>
        public int ReportEvery = 10;

        /// <summary>Seed of initialisation, batch order and default sampling; null takes the MLContext's seed, and a
        /// random one when the MLContext has none (as ML.NET does). Default null.</summary>
        public int? Seed;

        /// <summary>Generation settings the transformer uses for its prompt column and as the default of
        /// <see cref="MemoryFormerLanguageModelTransformer.Generate"/>; a null seed becomes <see cref="Seed"/>.</summary>
        public GenerationOptions Generation = new();

        /// <summary>Prompts generated together when the transformer maps a column. Default 8.</summary>
        public int GenerationBatchSize = 8;

        /// <summary>Receives step, loss, validation loss, tokens/s and ETA. Default null.</summary>
        public IProgress<TrainingProgress>? Progress;

        /// <summary>Stops Fit between steps with <see cref="OperationCanceledException"/>; with <see cref="CheckpointPath"/>
        /// set, the last completed step is checkpointed first. Default none.</summary>
        public CancellationToken CancellationToken;

        /// <summary>
        /// Checkpoint file of the run; null (the default) writes none. When set, Fit writes the whole training state
        /// (weights, optimizer moments, step, loss history, validation state) to it atomically every
        /// <see cref="CheckpointEverySteps"/> steps, every <see cref="CheckpointInterval"/>, when cancelled and at the
        /// end; and when the file already holds a checkpoint of the same run (same architecture, tokenizer, options,
        /// seed and text) Fit resumes from it ("resumed from step k" in the log), reaching bit-identical weights and
        /// losses; a finished run's checkpoint returns the same model at once. A checkpoint of another run makes Fit
        /// throw an <see cref="InvalidOperationException"/> naming what differs. Set <see cref="Seed"/> (or the
        /// MLContext's seed): the run's identity includes it.
        /// </summary>
        public string? CheckpointPath;

        /// <summary>Write a checkpoint every this many steps; 0 = not by step count. Default 0.</summary>
        public int CheckpointEverySteps;

        /// <summary>Write a checkpoint after a step when this much wall time passed since the last one; null = not by
        /// time. Default null.</summary>
        public TimeSpan? CheckpointInterval;

        /// <summary>Throws naming the first invalid option.</summary>
        internal void Validate()
        {
            Require(!string.IsNullOrWhiteSpace(TextColumnName), nameof(TextColumnName), "must name a column");
            Require(!string.IsNullOrWhiteSpace(PromptColumnName), nameof(PromptColumnName), "must name a column");
            Require(!string.IsNullOrWhiteSpace(GeneratedTextColumnName), nameof(GeneratedTextColumnName), "must name a column");
            Require(Architecture is not null, nameof(Architecture), "must not be null");
            Require(Enum.IsDefined(Tokenizer), nameof(Tokenizer), $"must be one of {string.Join(", ", Enum.GetNames<TextTokenizerKind>())}");
            Require(ContextLength >= 2, nameof(ContextLength), "must be at least 2");
            Require(BatchSize >= 1, nameof(BatchSize), "must be at least 1");
            Require(Epochs >= 1, nameof(Epochs), "must be at least 1");
            Require(MaxSteps is null or >= 1, nameof(MaxSteps), "must be at least 1 when set");
            Require(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), "must be a positive number");
            Require(TableLearningRate > 0 && double.IsFinite(TableLearningRate), nameof(TableLearningRate), "must be a positive number");
            Require(WeightDecay >= 0, nameof(WeightDecay), "must be ≥ 0");
            Require(WarmupSteps >= 0, nameof(WarmupSteps), "must be ≥ 0");
            Require(Enum.IsDefined(TableMomentPrecision), nameof(TableMomentPrecision),
                $"must be one of {string.Join(", ", Enum.GetNames<MomentPrecision>())}");
            Require(ValidationFraction is >= 0 and < 1, nameof(ValidationFraction), "must be in [0, 1)");
            Require(ValidateEvery >= 0, nameof(ValidateEvery), "must be ≥ 0");
            Require(ReportEvery >= 1, nameof(ReportEvery), "must be at least 1");
            Require(GenerationBatchSize >= 1, nameof(GenerationBatchSize), "must be at least 1");
            Require(CheckpointPath is null || !string.IsNullOrWhiteSpace(CheckpointPath), nameof(CheckpointPath), "must be null or a file path");
            Require(CheckpointEverySteps >= 0, nameof(CheckpointEverySteps), "must be ≥ 0");
            Require(CheckpointInterval is null || CheckpointInterval > TimeSpan.Zero, nameof(CheckpointInterval), "must be positive when set");
            Require(Generation is not null, nameof(Generation), "must not be null");
            Generation!.Validate();
        }

        internal TrainingOptions ToTrainingOptions() => new()
        {
            LearningRate = LearningRate, TableLearningRate = TableLearningRate, WeightDecay = WeightDecay,
            TableWeightDecay = WeightDecay, WarmupSteps = WarmupSteps, TableMomentPrecision = TableMomentPrecision, ValidateEvery = ValidateEvery, ReportEvery = ReportEvery,
            CheckpointPath = CheckpointPath, CheckpointEverySteps = CheckpointEverySteps, CheckpointInterval = CheckpointInterval,
        };

        private static void Require(bool ok, string option, string rule)
        {
            if (!ok) throw new ArgumentOutOfRangeException(option, $"MemoryFormer language model option {option} {rule}.");
        }
    }
}
