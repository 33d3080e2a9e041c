using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Trains a causal MemoryFormer language model on a text column; create it with
/// <c>mlContext.Text.MemoryFormer(...)</c>.
/// </summary>
/// <remarks>
/// <para><b>Input and output columns</b></para>
/// <list type="table">
/// <listheader><term>Column</term><description>Type and role</description></listheader>
/// <item><term><see cref="Options.TextColumnName"/></term><description>String: training documents (Fit only).</description></item>
/// <item><term><see cref="Options.PromptColumnName"/></term><description>String: prompts to continue (Transform). Data
/// without it (the training documents in an <c>Append</c> chain) passes through Transform unchanged.</description></item>
/// <item><term><see cref="Options.GeneratedTextColumnName"/></term><description>String, added when the prompt column is
/// present: the continuation.</description></item>
/// </list>
/// <para><b>Trainer characteristics</b></para>
/// <list type="table">
/// <item><term>Machine learning task</term><description>Causal language modelling (next-token prediction).</description></item>
/// <item><term>Needs normalization / caching</term><description>No / No (the text is read once).</description></item>
/// <item><term>Required NuGet</term><description>Microsoft.ML.MemoryFormer and a TorchSharp native package (TorchSharp-cpu).</description></item>
/// <item><term>Device</term><description>MLContext.GpuDeviceId (CUDA when available), else CPU when MLContext.FallbackToCpu is set.</description></item>
/// </list>
/// <para>Fit tokenizes the documents, joins them with end-of-text separators, packs them into windows of
/// ContextLength + 1 tokens, and trains with AdamW (tables at their own learning rate), warm-up and cosine decay,
/// logging through the MLContext's <c>Log</c> event. It writes no files unless <see cref="MemoryFormerTrainerOptions.CheckpointPath"/> is set
/// (then only that checkpoint, atomically): a failed or cancelled Fit leaves nothing half-written.</para>
/// </remarks>
public sealed partial class MemoryFormerLanguageModelEstimator : IEstimator<MemoryFormerLanguageModelTransformer>
{
    private readonly IHostEnvironment env;
    private readonly Options options;

    internal MemoryFormerLanguageModelEstimator(IHostEnvironment env, Options options)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.env = env;
        this.options = options;
        env.ComponentCatalog.RegisterMemoryFormer();
    }

    /// <summary>Trains the language model on the text column of <paramref name="input"/>.</summary>
    /// <param name="input">Data with the text column.</param>
    /// <returns>The fitted transformer (dispose it to free the model).</returns>
    /// <exception cref="ArgumentOutOfRangeException">The text column is missing or not text.</exception>
    /// <exception cref="ArgumentException">The data holds too little text for one window.</exception>
    /// <exception cref="OperationCanceledException">Cancelled through <see cref="MemoryFormerTrainerOptions.CancellationToken"/>.</exception>
    public MemoryFormerLanguageModelTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var torchScope = TorchSharp.torch.NewDisposeScope();               // temporaries stay reachable (Runtime/TorchScope.cs)
        var ct = options.CancellationToken;
        var documents = TextColumn.ReadAll(input, options.TextColumnName, nameof(Options.TextColumnName), ct);
        var validation = options.ValidationSet is { } v
            ? TextColumn.ReadAll(v, options.TextColumnName, nameof(Options.ValidationSet), ct) : null;

        var host = env.Register(nameof(MemoryFormerLanguageModelEstimator));
        int seed = options.Seed ?? MLNetInternals.GetSeed(env) ?? host.Rand.Next();
        var device = MLContextDevice.Of(env);
        ITextTokenizer tokenizer = options.CustomTokenizer
            ?? (options.Tokenizer == TextTokenizerKind.Gpt2 ? new Gpt2Tokenizer() : new ByteLevelTokenizer());
        var config = options.Architecture with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = options.ContextLength };
        var plan = new LanguageModelTrainingPlan(config, tokenizer, options.BatchSize, options.ValidationFraction, seed, device,
            (stepsPerEpoch, validated) => options.ToTrainingOptions(seed, stepsPerEpoch, validated), options.InitialModel);

        using var channel = host.Start("Fit");
        var log = options.LogTo(channel);
        log($"Training a {config.Kind} language model (d = {config.Width}, " +
            $"{config.Layers} layers, T = {config.ContextLength}, {tokenizer.Describe().Kind} tokens) on {device}, seed {seed}");
        var (model, result) = LanguageModelTrainer.Train(documents, validation, plan, options.Progress, log,
            () => MLNetInternals.IsCanceled(host), ct);
        var generation = options.Generation.Seed is null ? options.Generation with { Seed = seed } : options.Generation;
        return new MemoryFormerLanguageModelTransformer(model, tokenizer, device, generation,
            new LanguageModelColumns(options.TextColumnName, options.PromptColumnName, options.GeneratedTextColumnName),
            options.GenerationBatchSize, result);
    }

    /// <summary>
    /// Checks the text column (Fit needs it) and says what the fitted transformer's Transform does to this data: it adds
    /// the generated-text column when the data has the prompt column (scalar text), and passes data without a prompt
    /// column through unchanged, so the estimator can sit in an <c>Append</c> chain whose training data has no prompts.
    /// </summary>
    /// <param name="inputSchema">Shape of the training data.</param>
    /// <returns>The shape after the transformer.</returns>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        TextColumn.Check(inputSchema, options.TextColumnName, nameof(Options.TextColumnName));
        if (!inputSchema.Any(c => c.Name == options.PromptColumnName)) return inputSchema;
        TextColumn.Check(inputSchema, options.PromptColumnName, nameof(Options.PromptColumnName));
        var columns = inputSchema.ToDictionary(c => c.Name);
        columns[options.GeneratedTextColumnName] = MLNetInternals.NewColumn(options.GeneratedTextColumnName,
            SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance, isKey: false);
        return new SchemaShape(columns.Values);
    }
}
