using System.Runtime.CompilerServices;
using Microsoft.ML.MemoryFormer.Generation.Sampling;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation;

/// <summary>TEMPORARY STUB of the lead's generator (same API); replaced by main's TextGenerator on merge.</summary>
public sealed class TextGenerator
{
    private readonly LanguageModel model;
    private readonly ITextTokenizer tokenizer;
    private readonly Device device;

    /// <summary>Creates a generator.</summary>
    public TextGenerator(LanguageModel model, ITextTokenizer tokenizer, Device device) =>
        (this.model, this.tokenizer, this.device) = (model, tokenizer, device);

    /// <summary>Generates a continuation.</summary>
    public string Generate(string prompt, GenerationOptions options, CancellationToken ct = default) =>
        string.Concat(Pieces(prompt, options, ct));

    /// <summary>Generates continuations.</summary>
    public IReadOnlyList<string> GenerateBatch(IReadOnlyList<string> prompts, GenerationOptions options, CancellationToken ct = default) =>
        prompts.Select(p => Generate(p, options, ct)).ToArray();

    /// <summary>Streams a continuation.</summary>
    public async IAsyncEnumerable<string> GenerateStreaming(string prompt, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        foreach (var piece in Pieces(prompt, options, ct))
        {
            await Task.Yield();
            yield return piece;
        }
    }

    private IEnumerable<string> Pieces(string prompt, GenerationOptions options, CancellationToken ct)
    {
        using var sampler = new TokenSampler(options, 0, tokenizer.VocabularySize);
        var ids = new List<int> { tokenizer.EndOfTextId };
        ids.AddRange(tokenizer.Encode(prompt));
        int context = model.Config.ContextLength;
        var detok = new StreamingDetokenizer(tokenizer);
        var stops = new StopSequenceMatcher(options.StopSequences);
        model.eval();
        for (int i = 0; i < options.MaxNewTokens && !stops.IsStopped; i++)
        {
            ct.ThrowIfCancellationRequested();
            int next;
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                var window = ids.Skip(Math.Max(0, ids.Count - context)).Select(x => (long)x).ToArray();
                var logits = model.ForwardLast(tensor(window).unsqueeze(0).to(device), AttentionContext.CausalLm); // [1, V]
                next = sampler.Sample(logits, [ids])[0];
            }
            if (next == tokenizer.EndOfTextId) break;
            ids.Add(next);
            var text = stops.Append(detok.Push(next));
            if (text.Length > 0) yield return text;
        }
        var rest = stops.Append(detok.Flush()) + stops.Flush();
        if (rest.Length > 0) yield return rest;
    }
}
