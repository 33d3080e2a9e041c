using System.Globalization;
using Microsoft.ML.MemoryFormer.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Diagnostics;

/// <summary>
/// Counts, while attached, how often every row of every Memory Layer table in a model is selected by the hash
/// (bucket health, the paper's Fig. 4). The counts come from the row ids the forward already computes; attaching costs
/// one small <c>bincount</c> per layer and forward. Dispose to detach.
/// </summary>
/// <example><code>
/// using var recorder = BucketUsageRecorder.Attach(languageModel);
/// languageModel.call(tokens);                       // any forwards: scoring, evaluation, training steps
/// foreach (var usage in recorder.Snapshot()) Console.WriteLine(usage);
/// </code></example>
/// <remarks>Only one recorder can be attached to a layer at a time. A dense model has no Memory Layers and yields an
/// empty list.</remarks>
public sealed class BucketUsageRecorder : IDisposable
{
    private readonly List<(string Name, MemoryLayer Layer, BucketCounter Counter)> layers = [];
    private bool disposed;

    private BucketUsageRecorder(nn.Module model, bool trainingOnly)
    {
        var named = model.named_modules().ToList();
        var sharedQk = named.Select(m => m.module).OfType<MemoryQkv>().SelectMany(q => new[] { q.Query, q.Key })
            .ToHashSet<MemoryLayer>(ReferenceEqualityComparer.Instance);
        var qkvOf = named.Where(m => m.module is MemoryQkv).Select(m => (Layer: ((MemoryQkv)m.module).Value, Name: m.name)).ToList();
        foreach (var (name, module) in named)
        {
            if (module is not MemoryLayer layer || sharedQk.Contains(layer)) continue;
            if (layer.UsageCounter is not null)
                throw new InvalidOperationException($"Layer '{name}' already has a bucket-usage recorder attached; dispose it first.");
            var counter = new BucketCounter((long)layer.ChunkCount << layer.BitsPerChunk, layer.Table.device, trainingOnly);
            layer.UsageCounter = counter;
            layers.Add((qkvOf.FirstOrDefault(q => ReferenceEquals(q.Layer, layer)).Name ?? name, layer, counter));
        }
    }

    /// <summary>Starts counting the bucket usage of every Memory Layer in <paramref name="model"/>.</summary>
    /// <param name="model">A <c>LanguageModel</c>, <c>TabularModel</c>, <c>SequenceClassifier</c> or any module containing Memory Layers.</param>
    /// <exception cref="InvalidOperationException">Another recorder is already attached to one of its layers.</exception>
    public static BucketUsageRecorder Attach(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new BucketUsageRecorder(model, trainingOnly: false);
    }

    /// <summary>As <see cref="Attach"/>, counting only forwards made in training mode (the training loop's log); null when
    /// the model has no Memory Layers or a caller's recorder is already attached (the caller's counts stay untouched).</summary>
    internal static BucketUsageRecorder? TryAttachForTraining(nn.Module model)
    {
        var tables = model.named_modules().Select(m => m.module).OfType<MemoryLayer>().ToList();
        return tables.Count == 0 || tables.Any(l => l.UsageCounter is not null) ? null : new(model, trainingOnly: true);
    }

    /// <summary>Number of layers being counted (Q/K/V of one attention count once).</summary>
    public int LayerCount => layers.Count;

    /// <summary>The statistics of every counted layer since attaching or the last <see cref="Reset"/>, in module order.</summary>
    public IReadOnlyList<BucketUsage> Snapshot()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return [.. layers.Select(l => new BucketUsage(l.Name, l.Layer.ChunkCount, 1 << l.Layer.BitsPerChunk, l.Counter.ToArray()))];
    }

    /// <summary>Clears all counts.</summary>
    public void Reset()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        foreach (var l in layers) l.Counter.Reset();
    }

    /// <summary>One short line for a training log: mean never-hit fraction and entropy over the layers, and the worst layer.</summary>
    internal static string Summarise(IReadOnlyList<BucketUsage> usage)
    {
        if (usage.Count == 0 || usage.All(u => u.TotalHits == 0)) return "";
        var worst = usage.MinBy(u => u.MeanNormalisedEntropy())!;
        return string.Create(CultureInfo.InvariantCulture,
            $" buckets never-hit {usage.Average(u => u.NeverHitFraction()):P1} entropy {usage.Average(u => u.MeanNormalisedEntropy()):F3} " +
            $"(lowest {worst.MeanNormalisedEntropy():F3} {worst.Layer})");
    }

    /// <summary>Detaches from the layers and frees the counts.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var l in layers)
        {
            if (ReferenceEquals(l.Layer.UsageCounter, l.Counter)) l.Layer.UsageCounter = null;
            l.Counter.Dispose();
        }
    }
}
