using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// A trained MemoryFormer language model in an ML.NET pipeline: maps a prompt column to a generated-text column
/// (prompts are generated in batches), and offers <see cref="Generate(string, GenerationOptions?, CancellationToken)"/>, <see cref="GenerateStreaming(string, GenerationOptions?, CancellationToken)"/> and
/// <see cref="Evaluate"/> directly. Dispose it to free the model.
/// </summary>
/// <remarks>
/// <para><b>Prompt truncation</b> (the <see cref="TextGenerator"/> policy): a prompt longer than the context keeps its
/// last ContextLength tokens and the rest is dropped without an error (only a window at its tail is tokenized, so a
/// 1 MB prompt costs about as much as a short one); when prompt plus output fill the context, the
/// window slides to its last ContextLength / 2 tokens and the KV cache is refilled from them. The model never sees
/// more than the ContextLength it was trained on: rotary positions do not extrapolate past it.</para>
/// <para><b>Saving:</b> <c>mlContext.Model.Save</c> stores the config, tokenizer description, weights, generation
/// defaults and column names; any MLContext, in any process, loads it with no registration call.
/// <see cref="Save(string)"/> / <see cref="Load"/> write and read the same content as a standalone checkpoint, which
/// the classification and tabular trainers can start from.</para>
/// </remarks>
public sealed class MemoryFormerLanguageModelTransformer : ITransformer, IDisposable, IModelLoadable<MemoryFormerLanguageModelTransformer>
{
    private const string ColumnsEntry = "columns.json";
    private readonly LanguageModel model;
    private readonly Device device;
    private readonly LanguageModelColumns columns;
    private TextGenerator? generator;
    private bool disposed;

    internal MemoryFormerLanguageModelTransformer(LanguageModel model, ITextTokenizer tokenizer, Device device,
        GenerationOptions generation, LanguageModelColumns columns, int generationBatchSize, TrainingResult? trainingResult)
    {
        generation.Validate();
        this.model = model;
        this.device = device;
        this.columns = columns;
        Tokenizer = tokenizer;
        DefaultGenerationOptions = generation;
        GenerationBatchSize = generationBatchSize;
        TrainingResult = trainingResult;
        model.eval();
    }

    private sealed record ColumnsJson(string Text, string Prompt, string GeneratedText, int GenerationBatchSize);

    /// <summary>What ML.NET writes into the model header for this transformer.</summary>
    static ModelSignatureInfo IModelLoadable<MemoryFormerLanguageModelTransformer>.Signature => Signature;

    internal static ModelSignatureInfo Signature { get; } =
        ModelSignatureInfo.For(typeof(MemoryFormerLanguageModelTransformer), "MFLMTRNS", "MemoryFormerLM");

    /// <summary>The architecture (vocabulary and context length included).</summary>
    public MemoryFormerConfig Config => model.Config;

    /// <summary>The tokenizer the model was trained with.</summary>
    public ITextTokenizer Tokenizer { get; }

    /// <summary>Generation settings used for the prompt column and when <see cref="Generate(string, GenerationOptions?, CancellationToken)"/> gets no options.</summary>
    public GenerationOptions DefaultGenerationOptions { get; }

    /// <summary>Column of prompts read by <see cref="Transform"/>.</summary>
    public string PromptColumnName => columns.Prompt;

    /// <summary>Column of continuations added by <see cref="Transform"/>.</summary>
    public string GeneratedTextColumnName => columns.GeneratedText;

    /// <summary>Default text column of <see cref="Evaluate"/> (the training column).</summary>
    public string TextColumnName => columns.Text;

    /// <summary>Prompts generated together by <see cref="Transform"/>.</summary>
    public int GenerationBatchSize { get; }

    /// <summary>Steps, losses and time of the training run; null for a loaded model.</summary>
    public TrainingResult? TrainingResult { get; }

    /// <summary>Always true: the transformer maps rows one to one.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The model, for trainers that start from this backbone (device: <see cref="Device"/>).</summary>
    internal LanguageModel Model => Alive(model);

    /// <summary>
    /// Opts batch-1 CPU decoding into bf16 copies of the LM head (and of the dense baseline's matrices): half the bytes
    /// per generated token, fp32 accumulation; false returns to the fp32 weights. Inference only; see
    /// <see cref="LanguageModel.UseBFloat16Inference"/>.
    /// </summary>
    public void UseBFloat16Inference(bool enabled = true) => Alive(model).UseBFloat16Inference(enabled);

    /// <summary>
    /// Opts batch-1 CPU decoding into reduced-precision copies of the weights it streams: bf16 (the LM head) or int8
    /// row-wise (the LM head and the Memory Layer tables), half or a quarter of the bytes; fp32 activations and
    /// accumulation. <see cref="InferencePrecision.Float32"/> returns to the fp32 weights exactly. Inference only, not
    /// saved; see <see cref="LanguageModel.UseInferencePrecision"/>.
    /// </summary>
    public void UseInferencePrecision(InferencePrecision precision) => Alive(model).UseInferencePrecision(precision);

    /// <summary>The precision batch-1 CPU decoding reads the weights in (<see cref="UseInferencePrecision"/>).</summary>
    public InferencePrecision InferencePrecision => Alive(model).InferencePrecision;

    /// <summary>Where the model lives.</summary>
    internal Device Device => device;

    // Made once even when the first calls race (threads share it: it keeps no per-call state).
    internal TextGenerator Generator => Alive(LazyInitializer.EnsureInitialized(ref generator,
        () => new TextGenerator(Alive(model), Tokenizer, device, DefaultGenerationOptions.Seed ?? 0)));

    /// <summary>Continues <paramref name="prompt"/>.</summary>
    /// <param name="prompt">Text to continue (see the truncation policy in the remarks).</param>
    /// <param name="options">Generation settings; null takes <see cref="DefaultGenerationOptions"/>.</param>
    /// <param name="cancellationToken">Stops between tokens.</param>
    /// <returns>The generated text, without the prompt.</returns>
    public string Generate(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default) =>
        Generator.Generate(prompt, options ?? DefaultGenerationOptions, cancellationToken);

    /// <summary>Continues <paramref name="prompt"/> and fills in <paramref name="usage"/>: the prompt and generated token counts and
    /// whether it stopped at <see cref="GenerationOptions.MaxNewTokens"/>.</summary>
    /// <param name="prompt">Text to continue.</param>
    /// <param name="options">Generation settings; null takes <see cref="DefaultGenerationOptions"/>.</param>
    /// <param name="usage">A new <see cref="GenerationUsage"/>, filled in by the time this returns.</param>
    /// <param name="cancellationToken">Stops between tokens.</param>
    /// <returns>The generated text, the same as <see cref="Generate(string, GenerationOptions?, CancellationToken)"/>'s.</returns>
    public string Generate(string prompt, GenerationOptions? options, GenerationUsage usage, CancellationToken cancellationToken = default) =>
        Generator.Generate(prompt, options ?? DefaultGenerationOptions, usage, cancellationToken);

    /// <summary><see cref="GenerateStreaming(string, GenerationOptions?, CancellationToken)"/> that fills in <paramref name="usage"/> as
    /// it streams: complete when the last piece has been read.</summary>
    /// <param name="prompt">Text to continue.</param>
    /// <param name="options">Generation settings; null takes <see cref="DefaultGenerationOptions"/>.</param>
    /// <param name="usage">A new <see cref="GenerationUsage"/>.</param>
    /// <param name="cancellationToken">Stops between tokens.</param>
    /// <returns>The pieces of the generated text.</returns>
    public IAsyncEnumerable<string> GenerateStreaming(string prompt, GenerationOptions? options, GenerationUsage usage,
        CancellationToken cancellationToken = default) =>
        Generator.GenerateStreaming(prompt, options ?? DefaultGenerationOptions, usage ?? throw new ArgumentNullException(nameof(usage)), cancellationToken);

    /// <summary>Continues <paramref name="prompt"/>, yielding text pieces as they are decoded; their concatenation equals
    /// <see cref="Generate(string, GenerationOptions?, CancellationToken)"/>'s result for the same options.</summary>
    /// <param name="prompt">Text to continue.</param>
    /// <param name="options">Generation settings; null takes <see cref="DefaultGenerationOptions"/>.</param>
    /// <param name="cancellationToken">Stops between tokens.</param>
    /// <returns>The pieces of the generated text.</returns>
    public IAsyncEnumerable<string> GenerateStreaming(string prompt, GenerationOptions? options = null,
        CancellationToken cancellationToken = default) =>
        Generator.GenerateStreaming(prompt, options ?? DefaultGenerationOptions, cancellationToken);

    /// <summary>An <see cref="Microsoft.Extensions.AI.IChatClient"/> over this model (Microsoft.Extensions.AI), with
    /// <see cref="DefaultGenerationOptions"/> where the chat options are silent. The model stays owned by this transformer.</summary>
    /// <param name="modelId">The model id the client reports.</param>
    /// <returns>The chat client.</returns>
    public Microsoft.Extensions.AI.IChatClient AsChatClient(string modelId = "memoryformer") =>
        new MemoryFormerChatClient(Generator, DefaultGenerationOptions, modelId);

    /// <summary>Perplexity, nats per token and bits per byte of the model on a text column.</summary>
    /// <param name="data">Documents to score.</param>
    /// <param name="textColumnName">Text column; null takes <see cref="TextColumnName"/>.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <returns>The metrics.</returns>
    public LanguageModelMetrics Evaluate(IDataView data, string? textColumnName = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var texts = TextColumn.ReadAll(data, textColumnName ?? TextColumnName, "textColumnName", cancellationToken);
        return LanguageModelEvaluator.Evaluate(Alive(model), Tokenizer, texts, device, batchSize: 16, cancellationToken);
    }

    /// <summary>
    /// Every token of <paramref name="text"/> with its log-probability given the text before it (after an end-of-text
    /// token, as <see cref="EvaluateMinimalPairs"/> reads a sentence): per-token surprisal, a text's total log-probability
    /// and its bits per byte. A text longer than the context is read in windows that move on by half a context, so each
    /// token after the first window is predicted from at least half a context of history.
    /// </summary>
    /// <param name="text">The text (empty gives no tokens).</param>
    /// <param name="cancellationToken">Stops between windows.</param>
    /// <returns>The tokens, their text pieces and log-probabilities.</returns>
    public TokenScores ScoreTokens(string text, CancellationToken cancellationToken = default) =>
        TokenScorer.Score(Alive(model), Tokenizer, text, device, cancellationToken);

    /// <summary>
    /// Zero-shot minimal-pair accuracy (BLiMP style, as lm-evaluation-harness scores it): the share of pairs whose good
    /// sentence gets a strictly higher summed token log-probability, after an end-of-text token, than its bad one.
    /// </summary>
    /// <param name="pairs">(acceptable, unacceptable) sentences; each must be non-empty and fit the context length.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <returns>Accuracy, pair count and mean log-probability margin.</returns>
    public MinimalPairsMetrics EvaluateMinimalPairs(IEnumerable<(string Good, string Bad)> pairs, CancellationToken cancellationToken = default) =>
        MinimalPairsEvaluator.Evaluate(Alive(model), Tokenizer, pairs, device, batchSize: 16, cancellationToken);

    /// <summary>
    /// Bucket health (the paper's Fig. 4): how often each row of each Memory Layer table is selected while the model reads
    /// a text column, with the never-hit fraction and normalised entropy per table. Empty for the dense baseline.
    /// </summary>
    /// <param name="data">Documents to read (as <see cref="Evaluate"/> does).</param>
    /// <param name="textColumnName">Text column; null takes <see cref="TextColumnName"/>.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <returns>One entry per Memory Layer, in module order; Q/K/V of one block share a hash and appear once.</returns>
    public IReadOnlyList<Diagnostics.BucketUsage> MeasureBucketUsage(IDataView data, string? textColumnName = null,
        CancellationToken cancellationToken = default)
    {
        using var recorder = Diagnostics.BucketUsageRecorder.Attach(Alive(model));
        Evaluate(data, textColumnName, cancellationToken);
        return recorder.Snapshot();
    }

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Mapper(inputSchema).OutputSchema;

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Mapper(inputSchema);

    /// <summary>Adds the generated-text column; rows are generated <see cref="GenerationBatchSize"/> at a time. Training
    /// data (the text column, no prompt column: what an <c>Append</c> chain transforms after Fit) is returned unchanged;
    /// other data without the prompt column is refused with an error naming it.</summary>
    /// <param name="input">Data with the prompt column.</param>
    /// <returns>The input with the generated-text column.</returns>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var mapper = Mapper(input.Schema);
        return mapper.Scorer.OutputColumns.Count == 0 ? input : new BatchScoringDataView(input, mapper);
    }

    /// <summary>
    /// Writes a standalone checkpoint (atomically: the file is either complete or untouched). The weights are streamed
    /// from the model to the file, so a model of any size is saved without a copy in memory.
    /// </summary>
    /// <param name="path">Checkpoint file.</param>
    public void Save(string path)
    {
        using var archive = ToArchive();
        archive.SaveAtomically(path);
    }

    /// <summary>Reads a checkpoint written by <see cref="Save(string)"/>.</summary>
    /// <param name="path">Checkpoint file.</param>
    /// <param name="gpuDeviceId">CUDA device to load onto; null for the CPU.</param>
    /// <param name="fallbackToCpu">Use the CPU when the GPU is not available.</param>
    /// <returns>The transformer (dispose it).</returns>
    /// <exception cref="InvalidDataException">The file is damaged, truncated, of another format version, or its entries
    /// do not belong together; the message says which (docs/reliability.md).</exception>
    public static MemoryFormerLanguageModelTransformer Load(string path, int? gpuDeviceId = null, bool fallbackToCpu = true)
    {
        using var archive = ModelArchive.Load(path);
        return FromArchive(archive, TorchRuntime.SelectDevice(gpuDeviceId, fallbackToCpu));
    }

    void ICanSaveModel.Save(ModelSaveContext ctx) => ToArchive().SaveTo(ctx, Signature);

    /// <summary>ML.NET's loader (registered by <c>RegisterMemoryFormer</c>).</summary>
    /// <param name="env">The loading environment (its GpuDeviceId / FallbackToCpu choose the device).</param>
    /// <param name="modelLoadContext">ML.NET's internal ModelLoadContext.</param>
    /// <returns>The loaded transformer.</returns>
    static MemoryFormerLanguageModelTransformer IModelLoadable<MemoryFormerLanguageModelTransformer>.Create(IHostEnvironment env,
        object modelLoadContext) => Create(env, modelLoadContext);

    internal static MemoryFormerLanguageModelTransformer Create(IHostEnvironment env, object modelLoadContext)
    {
        return FromArchive(ModelArchive.LoadFrom(modelLoadContext, Signature), MLContextDevice.Of(env));
    }

    /// <summary>Frees the model's tensors.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        model.Dispose();
    }

    private ScoringMapper Mapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return new ScoringMapper(new LanguageModelScorer(this, inputSchema), inputSchema);
    }

    private ModelArchive ToArchive() => new ModelArchive()
        .SetText(ModelArchive.ConfigEntry, Config.ToJson())
        .SetText(ModelArchive.TokenizerEntry, Tokenizer.Describe().ToJson())
        .SetText(ModelArchive.GenerationEntry, JsonSerializer.Serialize(DefaultGenerationOptions))
        .SetText(ColumnsEntry, JsonSerializer.Serialize(new ColumnsJson(columns.Text, columns.Prompt, columns.GeneratedText, GenerationBatchSize)))
        .WithWeights(Alive(model));

    private static MemoryFormerLanguageModelTransformer FromArchive(ModelArchive archive, Device device)
    {
        var config = archive.GetJson(ModelArchive.ConfigEntry, MemoryFormerConfig.FromJson);
        var tokenizer = archive.GetJson(ModelArchive.TokenizerEntry, json => ITextTokenizer.FromDescription(TokenizerDescription.FromJson(json)));
        var generation = archive.GetJson(ModelArchive.GenerationEntry, json =>
        {
            var read = JsonSerializer.Deserialize<GenerationOptions>(json);
            read?.Validate();
            return read;
        });
        var c = archive.GetJson(ColumnsEntry, json => JsonSerializer.Deserialize<ColumnsJson>(json) is { } read && read.GenerationBatchSize > 0
            && !string.IsNullOrEmpty(read.Prompt) && !string.IsNullOrEmpty(read.GeneratedText) && read.Text is not null
            ? read : throw new ArgumentException("column names must be set and the generation batch size positive."));
        ModelParts.CheckTokenizerFits(tokenizer, config);
        ModuleWeights.CheckSizeFits(config, archive, headParameters: LanguageModel.HeadParameterCount(config));
        TorchRuntime.EnsureAvailable();
        return ModuleLoader.Load(archive, config, () => new LanguageModel(config), device, model =>
            new MemoryFormerLanguageModelTransformer(model, tokenizer, device, generation,
                new LanguageModelColumns(c.Text, c.Prompt, c.GeneratedText), c.GenerationBatchSize, trainingResult: null));
    }

    private T Alive<T>(T value) => disposed ? throw new ObjectDisposedException(nameof(MemoryFormerLanguageModelTransformer)) : value;
}
