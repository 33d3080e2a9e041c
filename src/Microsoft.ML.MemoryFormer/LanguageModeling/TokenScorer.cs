using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.LanguageModeling;

/// <summary>
/// Scores every token of one text with a causal language model (<see cref="TokenScores"/>): the text is read as
/// <c>EOT text</c> and each token gets log p(token | EOT, earlier tokens). A text longer than the context is read in
/// windows of the context length that move on by half of it, each window scoring only the tokens the previous one did not,
/// so every token but those of the first window sees at least half a context of history (the usual strided evaluation).
/// </summary>
internal static class TokenScorer
{
    /// <summary>The tokens of <paramref name="text"/> with their log-probabilities and text pieces.</summary>
    public static TokenScores Score(LanguageModel model, ITextTokenizer tokenizer, string text, Device device, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = tokenizer.Encode(text);
        var logProbabilities = LogProbabilities(model, [tokenizer.EndOfTextId, .. ids], device, cancellation);
        var detokenizer = new StreamingDetokenizer(tokenizer);
        var pieces = ids.Select(detokenizer.Push).ToArray();
        if (pieces.Length > 0) pieces[^1] += detokenizer.Flush();                    // an unfinished character ends the text
        var tokens = ids.Select((id, i) => new TokenLogProbability(id, pieces[i], logProbabilities[i])).ToArray();
        return new TokenScores(tokens, System.Text.Encoding.UTF8.GetByteCount(text));
    }

    /// <summary>log p(row[j] | row[..j]) for j = 1 .. row.Length − 1, in nats.</summary>
    private static double[] LogProbabilities(LanguageModel model, int[] row, Device device, CancellationToken cancellation)
    {
        int context = model.Config.ContextLength, stride = Math.Max(1, context / 2);
        var result = new double[row.Length - 1];
        using var evaluation = EvaluationMode.Enter(model);            // eval mode, no gradients; training mode restored after
        for (int start = 0, scored = 0; scored < result.Length; start += stride)
        {
            cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            int length = Math.Min(context, row.Length - 1 - start);              // inputs row[start..start+length), targets one later
            var inputs = tensor(row.Skip(start).Take(length).Select(x => (long)x).ToArray(), [1, length], device: device);
            var targets = tensor(row.Skip(start + 1).Take(length).Select(x => (long)x).ToArray(), [1, length], device: device);
            // In float64, as MinimalPairsEvaluator scores a sentence, so a short text's sum is its sentence score.
            var picked = F.log_softmax(model.Forward(inputs, AttentionContext.CausalLm).to_type(ScalarType.Float64), -1)
                .gather(-1, targets.unsqueeze(-1)).squeeze(-1)[0].cpu().data<double>().ToArray();   // [length]
            for (int j = scored - start; j < length; j++) result[start + j] = picked[j];
            scored = start + length;
        }
        return result;
    }
}
