using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// The weighted row gather out[n] = Σₖ w[n,k] · table[rows[n,k]] + bias, the only hot op of a Memory Layer, and the one
/// place that chooses how it runs: the fused managed kernel (<see cref="FusedMemoryGather"/>) for CPU float32 while
/// <see cref="KernelSettings.UseFusedKernels"/> is on, libtorch's EmbeddingBag (sum mode, per-sample weights) otherwise.
/// </summary>
internal static class MemoryGather
{
    /// <summary>codes.Rows, codes.Weights [N, K], the layer's table [R, h] and bias [h] → [N, h], bias added.</summary>
    public static Tensor Apply(HashCodes codes, MemoryLayer layer) => ApplyShared(codes, [layer])[0];

    /// <summary>Several layers read with the same codes (Q, K, V) → one [N, h] per layer, biases added.</summary>
    /// <remarks>The fused kernel starts each output row from the bias (<see cref="KernelSettings.FoldBias"/>); the
    /// EmbeddingBag path adds it afterwards. A layer's reused gradient buffer is passed only while a training loop has
    /// attached it (<see cref="TableGradient.Attached"/>). Each layer's bf16 copy (<see cref="MemoryLayer.ForwardCopy"/>) is passed
    /// always: the kernel reads it only in a training forward with <see cref="KernelSettings.Bf16ForwardTables"/> on, and keeps it
    /// current whenever it updates a table in place; likewise the kept tile-major copy (<see cref="MemoryLayer.TileCopy"/>,
    /// <see cref="KernelSettings.TileMajorCopyFromUpdate"/>).</remarks>
    public static Tensor[] ApplyShared(HashCodes codes, IReadOnlyList<MemoryLayer> layers)
    {
        var settings = KernelSettings.Current;
        if (!layers.All(l => UsesFusedKernel(settings, codes, l.Table)))
        {
            codes.Rows32?.Release();                                             // EmbeddingBag reads the int64 rows
            return layers.Select(l => LiveScalars.Add(l.Bag.call(codes.Rows, null, codes.Weights), l.Bias)).ToArray(); // [N, h] each
        }
        var tables = layers.Select(l => (Tensor)l.Table).ToArray();
        var gradients = layers.Select(l => l.Gradient.Attached ? l.Gradient : null).ToArray();
        var copies = layers.Select(l => l.ForwardCopy).ToArray();
        var tileCopies = layers.Select(l => l.TileCopy).ToArray();
        if (settings.FoldBias)
            return FusedMemoryGather.ApplyMany(codes.Rows, codes.Weights, tables, gradients, layers.Select(l => (Tensor)l.Bias).ToArray(), copies, tileCopies, codes.Rows32);
        var outputs = FusedMemoryGather.ApplyMany(codes.Rows, codes.Weights, tables, gradients, copies: copies, tileCopies: tileCopies, rows32: codes.Rows32);
        return outputs.Select((y, i) => LiveScalars.Add(y, layers[i].Bias)).ToArray();                         // [N, h] each
    }

    private static bool UsesFusedKernel(KernelSettings settings, HashCodes codes, Tensor table) =>
        settings.UseFusedKernels && codes.Rows.device_type == DeviceType.CPU && FusedMemoryGather.IsSupported(table)
        && FusedMemoryGather.IsSupported(codes.Weights);
}
