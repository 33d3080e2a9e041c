using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.LanguageModeling;

/// <summary>
/// Scores documents with a language model. The documents are joined as in training, <c>EOT doc₀ EOT doc₁ EOT …</c>,
/// and cut into non-overlapping windows of the context length (the last one shorter); every token after the
/// leading EOT is predicted once, so a window's first positions see little context (as in the PyTorch anchor).
/// </summary>
internal static class LanguageModelEvaluator
{
    public static LanguageModelMetrics Evaluate(LanguageModel model, ITextTokenizer tokenizer, IEnumerable<string> documents,
        Device device, int batchSize, CancellationToken cancellation = default)
    {
        var texts = documents.Where(d => !string.IsNullOrEmpty(d)).ToList();
        long bytes = texts.Sum(t => (long)tokenizer.CountBytes(t));
        int[] stream = [tokenizer.EndOfTextId, .. new DocumentPacker(tokenizer).Join(texts)];
        if (stream.Length < 2)
            throw new ArgumentException("There is no text to evaluate: every document is empty.", nameof(documents));
        int t = model.Config.ContextLength;
        var windows = new TokenWindows(stream, t);
        double nats = 0;
        using var evaluation = EvaluationMode.Enter(model);            // eval mode, no gradients; training mode restored after
        for (int start = 0; start < windows.Count; start += batchSize)
        {
            cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var (inputs, targets) = windows.GetBatch(
                Enumerable.Range(start, Math.Min(batchSize, windows.Count - start)).ToArray(), device); // [B, T] each
            nats += SumNats(model, inputs, targets);
        }
        int covered = windows.Count * t;                                         // tokens predicted so far
        if (covered + 1 < stream.Length)
        {
            using var scope = NewDisposeScope();
            var tail = stream[covered..].Select(x => (long)x).ToArray();
            var ids = tensor(tail, [1, tail.Length]).to(device);                  // [1, n+1]
            nats += SumNats(model, ids.narrow(1, 0, tail.Length - 1), ids.narrow(1, 1, tail.Length - 1));
        }
        return new LanguageModelMetrics(stream.Length - 1, bytes, nats);
    }

    private static double SumNats(LanguageModel model, Tensor inputs, Tensor targets)
    {
        if (model.AdaptiveHead is not null)                                             // exact log-probs of the targets only
            return model.TargetLogProbs(inputs, targets).to_type(ScalarType.Float64).sum().neg().item<double>();
        var logits = model.Forward(inputs, AttentionContext.CausalLm);                 // [B, T, V]
        return F.cross_entropy(logits.reshape(-1, logits.shape[^1]).to_type(ScalarType.Float64), targets.reshape(-1),
            reduction: nn.Reduction.Sum).item<double>();
    }
}
