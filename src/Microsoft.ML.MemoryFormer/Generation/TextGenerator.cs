using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.ML.MemoryFormer.Generation.Sampling;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation;

/// <summary>
/// Generates text with a trained language model: one prompt, many prompts in a batch, or a stream of text pieces.
/// Uses a preallocated KV cache, so each new token costs one single-position forward pass.
/// </summary>
/// <remarks>
/// A prompt keeps its last <c>ContextLength</c> tokens; longer generations slide the window (see
/// <see cref="Configuration.MemoryFormerConfig.ContextLength"/>: rotary positions do not extrapolate past it). Generation ends at
/// the end-of-text token, a stop sequence (not included in the text) or <see cref="GenerationOptions.MaxNewTokens"/>.
/// </remarks>
public sealed class TextGenerator
{
    private readonly TokenDecoder decoder;

    /// <summary>Wraps a trained model and its tokenizer; the model is switched to evaluation mode.</summary>
    /// <param name="model">The language model, already on <paramref name="device"/>.</param>
    /// <param name="tokenizer">The tokenizer the model was trained with.</param>
    /// <param name="device">Where the model lives.</param>
    /// <param name="defaultSeed">Sampling seed when <see cref="GenerationOptions.Seed"/> is null.</param>
    public TextGenerator(LanguageModel model, ITextTokenizer tokenizer, Device device, int defaultSeed = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.ModelVocabularySize > model.Config.VocabularySize)
            throw new ArgumentException($"The tokenizer needs {tokenizer.ModelVocabularySize} ids but the model's vocabulary " +
                $"has {model.Config.VocabularySize}.", nameof(tokenizer));
        Model = model;
        Tokenizer = tokenizer;
        DefaultSeed = defaultSeed;
        model.eval();
        decoder = new TokenDecoder(model, tokenizer.PadId ?? tokenizer.EndOfTextId, tokenizer.EndOfTextId, device);
    }

    /// <summary>The language model.</summary>
    public LanguageModel Model { get; }

    /// <summary>The tokenizer.</summary>
    public ITextTokenizer Tokenizer { get; }

    /// <summary>Seed used when the options have none.</summary>
    public int DefaultSeed { get; }

    /// <summary>Generates a continuation of <paramref name="prompt"/>.</summary>
    public string Generate(string prompt, GenerationOptions options, CancellationToken cancellationToken = default) =>
        GenerateBatch([prompt], options, cancellationToken)[0];

    /// <summary>Generates continuations of many prompts at once (one forward pass per step for all of them).</summary>
    public IReadOnlyList<string> GenerateBatch(IReadOnlyList<string> prompts, GenerationOptions options,
        CancellationToken cancellationToken = default) => GenerateBatch(prompts, options, usages: null, cancellationToken);

    /// <summary><see cref="Generate(string, GenerationOptions, CancellationToken)"/> that also fills in <paramref name="usage"/>.</summary>
    public string Generate(string prompt, GenerationOptions options, GenerationUsage usage, CancellationToken cancellationToken = default) =>
        GenerateBatch([prompt], options, [usage ?? throw new ArgumentNullException(nameof(usage))], cancellationToken)[0];

    private IReadOnlyList<string> GenerateBatch(IReadOnlyList<string> prompts, GenerationOptions options, GenerationUsage[]? usages,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0) return [];
        var outputs = prompts.Select(_ => new Continuation(Tokenizer, options)).ToArray();
        var encoded = prompts.Select(Encode).ToArray();
        using var sampler = NewSampler(options);
        foreach (var next in decoder.Decode(encoded, sampler, useCache: true))
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (int i = 0; i < next.Length; i++)
            {
                if (usages is not null && !outputs[i].Done) usages[i].GeneratedTokens++;   // as the stream counts: the token that ends it too
                outputs[i].Push(next[i]);
            }
            if (outputs.All(o => o.Done)) break;
        }
        for (int i = 0; usages is not null && i < usages.Length; i++)
        {
            usages[i].PromptTokens = Math.Min(Math.Max(encoded[i].Count, 1), Model.Config.ContextLength);
            usages[i].StoppedAtMaxNewTokens = !outputs[i].Done;
        }
        return outputs.Select(o => o.Finish()).ToArray();
    }

    /// <summary>Streams the continuation of <paramref name="prompt"/> as text pieces, as soon as each is decoded.</summary>
    /// <remarks>Pieces never split a multi-byte character; their concatenation equals <see cref="Generate(string, GenerationOptions, CancellationToken)"/>'s text.</remarks>
    public IAsyncEnumerable<string> GenerateStreaming(string prompt, GenerationOptions options,
        CancellationToken cancellationToken = default) =>
        GenerateStreaming(prompt, options, new GenerationUsage(), cancellationToken);

    /// <summary>
    /// <see cref="GenerateStreaming(string, GenerationOptions, CancellationToken)"/> that also fills in
    /// <paramref name="report"/>: prompt and generated token counts, and whether it ended at MaxNewTokens.
    /// </summary>
    internal async IAsyncEnumerable<string> GenerateStreaming(string prompt, GenerationOptions options, GenerationUsage report,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(report);
        var output = new Continuation(Tokenizer, options);
        using var sampler = NewSampler(options);
        var ids = Encode(prompt);
        report.PromptTokens = Math.Min(Math.Max(ids.Count, 1), Model.Config.ContextLength);
        report.StoppedAtMaxNewTokens = true;
        foreach (var next in decoder.Decode([ids], sampler, useCache: true))
        {
            cancellationToken.ThrowIfCancellationRequested();
            report.GeneratedTokens++;
            var piece = output.Push(next[0]);
            if (piece.Length > 0)
            {
                yield return piece;
                await Task.Yield();
            }
            if (output.Done)
            {
                report.StoppedAtMaxNewTokens = false;
                break;
            }
        }
        var tail = output.FinishPiece();
        if (tail.Length > 0) yield return tail;
    }

    /// <summary>Token ids generated for <paramref name="prompt"/>, with or without the KV cache (for checking one against the other).</summary>
    internal int[] GenerateIds(IReadOnlyList<int> prompt, GenerationOptions options, bool useCache)
    {
        using var sampler = NewSampler(options);
        return decoder.Decode([prompt], sampler, useCache).Select(n => n[0]).ToArray();
    }

    // Only the prompt's tail that fits the context is tokenized (TokenBudget), so a 1 MB prompt costs about as much as a short one.
    private IReadOnlyList<int> Encode(string prompt) =>
        TokenBudget.Tail(Tokenizer, prompt ?? throw new ArgumentNullException(nameof(prompt)), Model.Config.ContextLength);

    private TokenSampler NewSampler(GenerationOptions options) =>
        new(options ?? throw new ArgumentNullException(nameof(options)), DefaultSeed, Tokenizer.VocabularySize);

    /// <summary>One sequence's text: detokenizes, applies stop sequences, knows when it is done.</summary>
    private sealed class Continuation(ITextTokenizer tokenizer, GenerationOptions options)
    {
        private readonly StreamingDetokenizer detokenizer = new(tokenizer);
        private readonly StopSequenceMatcher stops = new(options.StopSequences);
        private readonly StringBuilder text = new();

        public bool Done { get; private set; }

        public string Push(int token)
        {
            if (Done) return "";
            if (token == tokenizer.EndOfTextId)
            {
                Done = true;
                return "";
            }
            var piece = stops.Append(detokenizer.Push(token));
            Done = stops.IsStopped;
            text.Append(piece);
            return piece;
        }

        public string FinishPiece()
        {
            var tail = stops.IsStopped ? "" : stops.Append(detokenizer.Flush()) + stops.Flush();
            text.Append(tail);
            Done = true;
            return tail;
        }

        public string Finish()
        {
            FinishPiece();
            return text.ToString();
        }
    }
}
