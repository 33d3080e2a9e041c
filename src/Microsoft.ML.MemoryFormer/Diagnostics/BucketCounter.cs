using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Diagnostics;

/// <summary>
/// Hit counts of one Memory Layer's K·2^τ table rows, accumulated from the row ids its hash already computes (one
/// <c>bincount</c> of the N·K row ids per forward, no extra hashing). Attached to a layer by <see cref="BucketUsageRecorder"/>.
/// </summary>
internal sealed class BucketCounter : IDisposable
{
    private readonly Tensor counts;     // int64 [K·2^τ], on the layer's device

    public BucketCounter(long rows, Device device, bool trainingOnly)
    {
        counts = zeros(rows, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope();
        TrainingOnly = trainingOnly;
    }

    /// <summary>Count only forwards made in training mode (the training loop's log skips its validation passes).</summary>
    public bool TrainingOnly { get; }

    /// <summary>Adds one hit to every row id in <paramref name="rows"/> (int64, any shape).</summary>
    public void Record(Tensor rows)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var flat = rows.reshape(-1);
        counts.add_(flat.bincount(null, counts.shape[0]), Runtime.LiveScalars.OneInteger);
    }

    /// <summary>Copies the counts to managed memory.</summary>
    public long[] ToArray()
    {
        using var scope = NewDisposeScope();                               // frees the wrappers the ops return
        return counts.cpu().data<long>().ToArray();
    }

    /// <summary>Clears the counts.</summary>
    public void Reset()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        counts.zero_();
    }

    public void Dispose() => counts.Dispose();
}
