using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// One Memory Layer (d → d, τ = 8, K = d/8, hashing included) next to <c>nn.Linear(d, d)</c> on N tokens, as in the
/// docs/benchmarks.md: forward under no_grad, and forward + backward of sum(y) with gradients for the input and
/// every parameter, gradients set to none before each call so their allocation is counted. The Memory Layer's table
/// gradient goes to its reused buffer, as in a training run (<c>Training/ModelOptimizer.cs</c> attaches it).
/// </summary>
internal sealed class LayerCase : IDisposable
{
    public const int BitsPerChunk = 8;
    private readonly MemoryLayer memory;
    private readonly Linear linear;
    private readonly Tensor x;

    public LayerCase(int width, int tokens)
    {
        random.manual_seed(7);
        memory = new MemoryLayer(width / BitsPerChunk, BitsPerChunk, width, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.02, 0.001);
        memory.Gradient.Attached = true;
        linear = nn.Linear(width, width);
        x = randn(tokens, width).requires_grad_(true);
    }

    /// <summary>The Memory Layer under test (<c>perf layer-budget</c> times its kernels on its table).</summary>
    public MemoryLayer Memory => memory;

    public void MemoryForward() => Forward(memory);

    public void LinearForward() => Forward(linear);

    /// <summary>The forward of <see cref="MemoryForwardBackward"/> alone: grad mode on (a backward could follow), table marked written.</summary>
    public void MemoryForwardTraining()
    {
        TileMajorBuffer.NoteRawWrite();
        using var scope = NewDisposeScope();
        memory.call(x);
    }

    public void MemoryForwardBackward() => ForwardBackward(memory);

    /// <summary><see cref="MemoryForwardBackward"/> with the blocked table gradient on (off by default: the row pass).</summary>
    public void MemoryForwardBackwardBlocked() =>
        Runtime.KernelSettings.Current.With(k => k.BlockedTableGradient = true, () => ForwardBackward(memory));

    /// <summary><see cref="MemoryForwardBackward"/> with the row pass's prefetch of the next row's ∂L/∂y rows off (on by default).</summary>
    public void MemoryForwardBackwardNoPrefetch() =>
        Runtime.KernelSettings.Current.With(k => k.PrefetchHitRows = false, () => ForwardBackward(memory));

    /// <summary><see cref="MemoryForwardBackward"/> with <c>KernelSettings.Bf16GradientRows</c> flipped (the row pass's ∂L/∂y in the other precision).</summary>
    public void MemoryForwardBackwardBf16Flipped() =>
        Runtime.KernelSettings.Current.With(k => k.Bf16GradientRows = !k.Bf16GradientRows, () => ForwardBackward(memory));

    /// <summary><see cref="MemoryForwardBackward"/> with <c>KernelSettings.Bf16ForwardTables</c> on (the forward reads the bf16 copy).</summary>
    public void MemoryForwardBackwardBf16Forward() =>
        Runtime.KernelSettings.Current.With(k => k.Bf16ForwardTables = true, () => ForwardBackward(memory));

    /// <summary><see cref="MemoryForwardBackward"/> with both bf16 switches on (<c>Bf16ForwardTables</c> and <c>Bf16GradientRows</c>).</summary>
    public void MemoryForwardBackwardMixed() =>
        Runtime.KernelSettings.Current.With(k => { k.Bf16ForwardTables = true; k.Bf16GradientRows = true; }, () => ForwardBackward(memory));

    /// <summary><see cref="MemoryForwardBackward"/> without marking the table written: the forward reads the tile-major copy the previous
    /// call left in the pooled buffer (<c>KernelSettings.ReuseTileMajorBuffer</c>), as a second forward over an unchanged table does.
    /// No training step gets this: its optimizer changes the table before every forward.</summary>
    public void MemoryForwardBackwardReused() => ForwardBackward(memory, tableWritten: false);

    public void LinearForwardBackward() => ForwardBackward(linear);

    /// <summary><see cref="MemoryForward"/> with the tiled forward off (the token-major kernel for every batch).</summary>
    public void MemoryForwardUntiled() =>
        Runtime.KernelSettings.Current.With(k => k.TiledForward = false, () => Forward(memory));

    /// <summary><see cref="MemoryForwardBackward"/> with the tiled forward off.</summary>
    public void MemoryForwardBackwardUntiled() =>
        Runtime.KernelSettings.Current.With(k => k.TiledForward = false, () => ForwardBackward(memory));

    private void Forward(nn.Module<Tensor, Tensor> layer)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        layer.call(x);
    }

    /// <summary>
    /// Forward + backward as in a training step. A step's optimizer changes the table before the next forward, so no forward finds
    /// the pooled tile-major copy current; the table here never changes, so each call first marks it written
    /// (<see cref="TileMajorBuffer.NoteRawWrite"/>, unless <paramref name="tableWritten"/> is false) and its forward runs the plan a
    /// training forward runs: on Intel each tile's columns copied straight from the table (<c>KernelSettings.TiledStridedCopy</c>),
    /// elsewhere the table copied tile-major first. Unmarked, the forward reads the copy a previous call left (the tile-major plan),
    /// which no training step gets. The forward-only rows (inference) keep the reuse.
    /// </summary>
    private void ForwardBackward(nn.Module<Tensor, Tensor> layer, bool tableWritten = true)
    {
        if (tableWritten && ReferenceEquals(layer, memory))
            TileMajorBuffer.NoteRawWrite();
        using var scope = NewDisposeScope();
        x.grad = null;
        foreach (var p in layer.parameters()) p.grad = null;
        layer.call(x).sum().backward();
    }

    public void Dispose()
    {
        memory.Dispose();
        linear.Dispose();
        x.Dispose();
    }
}
