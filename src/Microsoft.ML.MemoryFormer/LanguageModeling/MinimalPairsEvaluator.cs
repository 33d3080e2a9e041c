using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.LanguageModeling;

/// <summary>
/// Scores minimal pairs with a causal language model (<see cref="MinimalPairsMetrics"/>): each sentence is encoded as
/// <c>EOT sentence</c> and its log-probability is the sum over its tokens of log p(token | EOT, earlier tokens), so
/// sentences of different lengths are compared as whole strings (no length normalisation), as in BLiMP.
/// </summary>
internal static class MinimalPairsEvaluator
{
    public static MinimalPairsMetrics Evaluate(LanguageModel model, ITextTokenizer tokenizer, IEnumerable<(string Good, string Bad)> pairs,
        Device device, int batchSize, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var list = pairs.ToList();
        var sentences = new List<string>(2 * list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i].Good is null || list[i].Bad is null)
                throw new ArgumentException($"Minimal pair {i} has a null sentence; give both the good and the bad sentence.", nameof(pairs));
            sentences.Add(list[i].Good);
            sentences.Add(list[i].Bad);
        }
        var logProbs = SentenceLogProbabilities(model, tokenizer, sentences, device, batchSize, cancellation);
        int correct = 0;
        double margin = 0;
        for (int i = 0; i < list.Count; i++)
        {
            double difference = logProbs[2 * i] - logProbs[2 * i + 1];
            if (difference > 0) correct++;
            margin += difference;
        }
        return new MinimalPairsMetrics(list.Count, correct, list.Count == 0 ? 0 : margin / list.Count);
    }

    /// <summary>log P(sentence | EOT) in nats for each sentence; each must fit the context after the EOT.</summary>
    public static double[] SentenceLogProbabilities(LanguageModel model, ITextTokenizer tokenizer, IReadOnlyList<string> sentences,
        Device device, int batchSize, CancellationToken cancellation = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        int context = model.Config.ContextLength;
        var rows = new int[sentences.Count][];
        for (int i = 0; i < sentences.Count; i++)
        {
            var ids = tokenizer.Encode(sentences[i]);
            if (ids.Count == 0) throw new ArgumentException($"Sentence {i} is empty: a minimal pair needs two non-empty sentences.", nameof(sentences));
            if (ids.Count > context)
                throw new ArgumentException($"Sentence {i} has {ids.Count} tokens, more than the model's context length {context}; " +
                    "score shorter sentences or use a model with a longer context.", nameof(sentences));
            rows[i] = [tokenizer.EndOfTextId, .. ids];
        }
        var result = new double[rows.Length];
        using var evaluation = EvaluationMode.Enter(model);            // eval mode, no gradients; training mode restored after
        for (int start = 0; start < rows.Length; start += batchSize)
        {
            cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            int b = Math.Min(batchSize, rows.Length - start), t = rows.Skip(start).Take(b).Max(r => r.Length) - 1;
            var inputs = new long[b * t];
            var targets = new long[b * t];
            var real = new float[b * t];
            for (int r = 0; r < b; r++)
            {
                var row = rows[start + r];
                for (int j = 0; j < row.Length - 1; j++)
                {
                    inputs[r * t + j] = row[j];
                    targets[r * t + j] = row[j + 1];
                    real[r * t + j] = 1;
                }
            }
            // Right padding: causal attention never lets a real position see the padding after it.
            var logits = model.Forward(tensor(inputs, [b, t], device: device), AttentionContext.CausalLm); // [B, T, V]
            var picked = F.log_softmax(logits.to_type(ScalarType.Float64), -1)
                .gather(-1, tensor(targets, [b, t], device: device).unsqueeze(-1)).squeeze(-1);              // [B, T]
            var sums = (picked * tensor(real, [b, t], device: device).to_type(ScalarType.Float64)).sum(1).cpu(); // [B]
            sums.data<double>().CopyTo(result.AsSpan(start, b));
        }
        return result;
    }
}
