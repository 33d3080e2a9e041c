using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.MLNet;

public sealed partial class MemoryFormerLanguageModelEstimator
{
    /// <summary>Settings of <see cref="MemoryFormerTextCatalog.MemoryFormer(Options)"/>; every field has a default. The
    /// options shared by every MemoryFormer trainer (seed, epochs, learning rates, validation, progress, cancellation,
    /// checkpoints) are in <see cref="MemoryFormerTrainerOptions"/>.</summary>
    public sealed class Options : MemoryFormerTrainerOptions
    {
        /// <summary>Sets the language model's defaults: 1 epoch, batches of 16 windows, weight decay 0.1, 5% held out.</summary>
        public Options()
        {
            Epochs = 1;
            BatchSize = 16;
            WeightDecay = 0.1;
            ValidationFraction = 0.05;
        }

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

        /// <summary>Any other tokenizer, e.g. a <see cref="TokenizerAdapter"/> over a Microsoft.ML.Tokenizers tokenizer
        /// (tiktoken, BPE, SentencePiece, WordPiece); when set it replaces <see cref="Tokenizer"/>. It must be storable
        /// (<see cref="ITextTokenizer.Describe"/>) for the model to be saved. Default null.</summary>
        public ITextTokenizer? CustomTokenizer;

        /// <summary>Tokens the model sees at once (T); generation keeps the last T tokens of a prompt. Default 128.</summary>
        public int ContextLength = 128;

        /// <summary>Linear warm-up steps before the cosine decay. Default 50.</summary>
        public int WarmupSteps = 50;

        /// <summary>Validate every this many steps (and after the last); 0 = only at the end. Default 100.</summary>
        public int ValidateEvery = 100;

        /// <summary>Report progress (log and <see cref="MemoryFormerTrainerOptions.Progress"/>) every this many steps. Default 10.</summary>
        public int ReportEvery = 10;

        /// <summary>Generation settings the transformer uses for its prompt column and as the default of
        /// <see cref="MemoryFormerLanguageModelTransformer.Generate(string, GenerationOptions?, CancellationToken)"/>; a null seed becomes <see cref="MemoryFormerTrainerOptions.Seed"/>.</summary>
        public GenerationOptions Generation = new();

        /// <summary>Prompts generated together when the transformer maps a column. Default 8.</summary>
        public int GenerationBatchSize = 8;

        /// <summary>A trained model to go on training instead of a fresh one (continued or task-adaptive pretraining in the
        /// benchmarks); its architecture must be the run's. Fit takes it over. Internal: not part of the public surface.</summary>
        internal LanguageModel? InitialModel;

        private protected override string OptionsName => "MemoryFormerLanguageModelEstimator.Options";

        /// <summary>Throws naming the first invalid option.</summary>
        internal override void Validate()
        {
            base.Validate();
            Check(!string.IsNullOrWhiteSpace(TextColumnName), nameof(TextColumnName), "must name a column");
            Check(!string.IsNullOrWhiteSpace(PromptColumnName), nameof(PromptColumnName), "must name a column");
            Check(!string.IsNullOrWhiteSpace(GeneratedTextColumnName), nameof(GeneratedTextColumnName), "must name a column");
            Check(Architecture is not null, nameof(Architecture), "must not be null");
            Check(Enum.IsDefined(Tokenizer), nameof(Tokenizer), $"must be one of {string.Join(", ", Enum.GetNames<TextTokenizerKind>())}");
            Check(ContextLength >= 2, nameof(ContextLength), "must be at least 2");
            Check(WarmupSteps >= 0, nameof(WarmupSteps), "must be ≥ 0");
            Check(ValidateEvery >= 0, nameof(ValidateEvery), "must be ≥ 0");
            Check(ReportEvery >= 1, nameof(ReportEvery), "must be at least 1");
            Check(GenerationBatchSize >= 1, nameof(GenerationBatchSize), "must be at least 1");
            Check(Generation is not null, nameof(Generation), "must not be null");
            Generation!.Validate();
        }

        private protected override int WarmupStepsOf(int stepsPerEpoch, int steps) => WarmupSteps;

        /// <summary>The language model validates and reports every so many steps, not once per epoch.</summary>
        private protected override TrainingOptions TaskDefaults(TrainingOptions options) =>
            options with { ValidateEvery = ValidateEvery, ReportEvery = ReportEvery };
    }
}
