using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Text tasks of MemoryFormer, reached as <c>mlContext.Text</c>: train a language model
/// (<see cref="MemoryFormer(string, string, string, int, int, int?, int, TextTokenizerKind, MemoryFormerConfig?)"/>),
/// evaluate it (<see cref="EvaluateLanguageModel"/>) and load a checkpoint (<see cref="LoadLanguageModel"/>).
/// </summary>
public sealed class MemoryFormerTextCatalog
{
    private readonly MLContext mlContext;

    internal MemoryFormerTextCatalog(MLContext mlContext) => this.mlContext = mlContext ?? throw new ArgumentNullException(nameof(mlContext));

    private IHostEnvironment Environment => MLNetInternals.GetEnvironment(mlContext);

    /// <summary>The MLContext this catalog belongs to (for catalog extensions in other folders, e.g. Interop).</summary>
    internal MLContext Context => mlContext;

    /// <summary>A causal MemoryFormer language model trained on <paramref name="textColumnName"/>.</summary>
    /// <param name="textColumnName">Column of training documents.</param>
    /// <param name="promptColumnName">Column of prompts the transformer continues.</param>
    /// <param name="generatedTextColumnName">Column the transformer writes.</param>
    /// <param name="contextLength">Tokens the model sees at once.</param>
    /// <param name="batchSize">Windows per step.</param>
    /// <param name="maxSteps">Optimizer steps; when null, <paramref name="epochs"/> passes over the windows.</param>
    /// <param name="epochs">Passes over the training windows when <paramref name="maxSteps"/> is null.</param>
    /// <param name="tokenizer">Byte-level (small corpora) or GPT-2.</param>
    /// <param name="architecture">Preset or config; null takes <see cref="MemoryFormerConfig.Small256"/>.</param>
    /// <returns>The estimator; see <see cref="MemoryFormerLanguageModelEstimator.Options"/> for the other settings.</returns>
    public MemoryFormerLanguageModelEstimator MemoryFormer(string textColumnName = "Text", string promptColumnName = "Prompt",
        string generatedTextColumnName = "GeneratedText", int contextLength = 128, int batchSize = 16, int? maxSteps = null,
        int epochs = 1, TextTokenizerKind tokenizer = TextTokenizerKind.ByteLevel, MemoryFormerConfig? architecture = null) =>
        MemoryFormer(new MemoryFormerLanguageModelEstimator.Options
        {
            TextColumnName = textColumnName, PromptColumnName = promptColumnName, GeneratedTextColumnName = generatedTextColumnName,
            ContextLength = contextLength, BatchSize = batchSize, MaxSteps = maxSteps, Epochs = epochs, Tokenizer = tokenizer,
            Architecture = architecture ?? MemoryFormerConfig.Small256,
        });

    /// <summary>A causal MemoryFormer language model with every setting in <paramref name="options"/>.</summary>
    /// <param name="options">The settings (validated here).</param>
    /// <returns>The estimator.</returns>
    public MemoryFormerLanguageModelEstimator MemoryFormer(MemoryFormerLanguageModelEstimator.Options options) => new(Environment, options);

    /// <summary>
    /// The multiclass text classifier, also reachable as <c>mlContext.MulticlassClassification.Trainers.MemoryFormerTextClassification</c>:
    /// fine-tunes a MemoryFormer encoder (optionally a pretrained language model's backbone) on a key-typed label.
    /// </summary>
    /// <param name="options">The settings.</param>
    /// <returns>The trainer.</returns>
    public MemoryFormerTextClassificationTrainer MulticlassClassifier(MemoryFormerTextClassificationOptions options) =>
        mlContext.MulticlassClassification.Trainers.MemoryFormerTextClassification(options);

    /// <summary>
    /// The binary text classifier, also reachable as <c>mlContext.BinaryClassification.Trainers.MemoryFormerTextClassification</c>:
    /// fine-tunes a MemoryFormer encoder on a Boolean label.
    /// </summary>
    /// <param name="options">The settings.</param>
    /// <returns>The trainer.</returns>
    public MemoryFormerTextClassificationTrainer BinaryClassifier(MemoryFormerTextClassificationOptions options) =>
        mlContext.BinaryClassification.Trainers.MemoryFormerTextClassification(options);

    /// <summary>Perplexity, nats per token and bits per byte of <paramref name="model"/> on a text column.</summary>
    /// <param name="model">A fitted or loaded language model.</param>
    /// <param name="data">Documents to score.</param>
    /// <param name="textColumnName">Text column; null takes the model's training column.</param>
    /// <returns>The metrics.</returns>
    public LanguageModelMetrics EvaluateLanguageModel(MemoryFormerLanguageModelTransformer model, IDataView data, string? textColumnName = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Evaluate(data, textColumnName);
    }

    /// <summary>Loads a checkpoint written by <see cref="MemoryFormerLanguageModelTransformer.Save(string)"/> onto the
    /// MLContext's device (GpuDeviceId / FallbackToCpu), and registers the loaders with this MLContext.</summary>
    /// <param name="path">Checkpoint file.</param>
    /// <returns>The transformer (dispose it).</returns>
    /// <exception cref="InvalidDataException">The file is damaged, truncated, of another format version, or its entries
    /// do not belong together; the message says which (docs/reliability.md).</exception>
    public MemoryFormerLanguageModelTransformer LoadLanguageModel(string path)
    {
        mlContext.ComponentCatalog.RegisterMemoryFormer();
        return MemoryFormerLanguageModelTransformer.Load(path, mlContext.GpuDeviceId, mlContext.FallbackToCpu);
    }
}
