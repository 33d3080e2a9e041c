using Microsoft.ML.MemoryFormer.Generation.Sampling;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation;

/// <summary>
/// The autoregressive loop over token ids for B sequences at once. Prompts are left-padded (pads masked out; rotary
/// scores depend only on relative positions, so padding does not change the result). With the KV cache each new
/// token costs one single-position forward (for one MemoryFormer sequence on the CPU, the fused
/// <see cref="FusedDecodeStep"/>); without it every step recomputes the window (the reference path).
/// An empty prompt starts from the end-of-text id, which separates documents in training.
/// </summary>
/// <remarks>
/// Context policy: a prompt keeps its last <c>ContextLength</c> tokens. When the window would exceed the context
/// length, it slides so that the last <c>ContextLength / 2</c> tokens remain, and the cache is refilled from them
/// (rotary positions do not extrapolate past the trained context). Both paths follow the same
/// policy, so greedy output is identical with and without the cache. In a batch the window is shared and slides when
/// the longest row fills it, so rows of a batch match single-prompt output until then.
/// </remarks>
internal sealed class TokenDecoder(LanguageModel model, int padId, int startId, Device device)
{
    private readonly int context = model.Config.ContextLength;

    /// <summary>Yields the next token of every sequence, step after step, until the caller stops or MaxNewTokens.</summary>
    public IEnumerable<int[]> Decode(IReadOnlyList<IReadOnlyList<int>> prompts, TokenSampler sampler, bool useCache)
    {
        int b = prompts.Count;
        var rows = prompts.Select(p => p.Count == 0 ? new List<int> { startId } : p.Skip(Math.Max(0, p.Count - context)).ToList()).ToArray();
        int length = rows.Max(r => r.Count);
        var tokens = rows.Select(r => Enumerable.Repeat(padId, length - r.Count).Concat(r).ToList()).ToArray();   // left-padded
        var real = rows.Select(r => Enumerable.Repeat(false, length - r.Count).Concat(Enumerable.Repeat(true, r.Count)).ToList()).ToArray();
        var histories = rows.Select(r => (IReadOnlyList<int>)r).ToArray();
        var generated = rows.Select(_ => new List<int>()).ToArray();                // what the frequency and presence penalties count
        AttentionCache[]? caches;
        FusedDecodeStep? fused;
        using (NewDisposeScope())                                                   // no tensor outside a scope (Runtime/TorchScope.cs)
        {
            caches = useCache ? model.Backbone.NewCaches(b, device) : null;        // their tensors are the caches' own
            fused = FusedDecodeStep.TryCreate(model, caches);                       // null: the general path only
        }
        int windowStart = 0;
        try
        {
            for (int step = 0; step < sampler.Options.MaxNewTokens; step++)
            {
                if (length - windowStart > context)
                {
                    windowStart = length - context / 2;
                    foreach (var c in caches ?? []) c.Reset();
                }
                var next = Step(tokens, real, windowStart, length, caches, fused, sampler, histories, generated);
                for (int i = 0; i < b; i++)
                {
                    generated[i].Add(next[i]);
                    tokens[i].Add(next[i]);
                    real[i].Add(true);
                    rows[i].Add(next[i]);
                }
                length++;
                yield return next;
            }
        }
        finally
        {
            foreach (var c in caches ?? []) c.Dispose();
        }
    }

    private int[] Step(List<int>[] tokens, List<bool>[] real, int windowStart, int length, AttentionCache[]? caches,
        FusedDecodeStep? fused, TokenSampler sampler, IReadOnlyList<IReadOnlyList<int>> histories, IReadOnlyList<IReadOnlyList<int>> generated)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long cached = caches?[0].Length ?? 0;
        int start = caches is null ? windowStart : windowStart + (int)cached;       // first position fed this step
        if (fused is not null && tokens.Length == 1 && length - start == 1)
            return sampler.Sample(fused.Logits(tokens[0][start]), histories, generated); // one token of one sequence: no mask
        var input = tensor(tokens.Select(t => t.Skip(start).Take(length - start).Select(x => (long)x)).SelectMany(x => x).ToArray(),
            [tokens.Length, length - start], device: device);                       // [B, T]
        bool padded = real.Any(r => r.Skip(windowStart).Take(length - windowStart).Contains(false));
        var keyMask = padded
            ? tensor(real.SelectMany(r => r.Skip(windowStart).Take(length - windowStart)).ToArray(), [real.Length, length - windowStart], device: device)
            : null;                                                                 // [B, S] over the whole window
        var logits = model.ForwardLast(input, new AttentionContext(true, keyMask, caches)); // [B, V]
        return sampler.Sample(logits, histories, generated);
    }
}
