using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// The weighted row gather out[n] = Σₖ w[n,k] · table[rows[n,k]], the only hot op of a Memory Layer. On the CPU
/// it runs the fused managed kernel (<see cref="FusedMemoryGather"/>); elsewhere, or when
/// <see cref="TorchRuntime.UseFusedKernels"/> is off, libtorch's EmbeddingBag (sum mode, per-sample weights).
/// </summary>
internal static class MemoryGather
{
    /// <summary>codes.Rows, codes.Weights [N, K] and the layer's table [R, h] → [N, h].</summary>
    public static Tensor Apply(HashCodes codes, MemoryLayer layer)
    {
        var table = layer.Table;
        return UsesFusedKernel(codes, table)
            ? FusedMemoryGather.ApplyMany(codes.Rows, codes.Weights, [table], [layer.Gradient])[0]  // [N, h]
            : layer.Bag.call(codes.Rows, null, codes.Weights);                                      // [N, h]
    }

    /// <summary>Several layers read with the same codes (Q, K, V) → one [N, h] per layer, biases added.</summary>
    public static Tensor[] ApplyShared(HashCodes codes, IReadOnlyList<MemoryLayer> layers)
    {
        if (!layers.All(l => UsesFusedKernel(codes, l.Table))) return layers.Select(l => l.Forward(codes)).ToArray();
        var outputs = FusedMemoryGather.ApplyMany(codes.Rows, codes.Weights, layers.Select(l => (Tensor)l.Table).ToArray(),
            layers.Select(l => (TableGradient?)l.Gradient).ToArray());
        return outputs.Select((y, i) => LiveScalars.Add(y, layers[i].Bias)).ToArray();                         // [N, h] each
    }

    private static bool UsesFusedKernel(HashCodes codes, Tensor table) =>
        TorchRuntime.UseFusedKernels && FusedMemoryGather.IsSupported(table) && FusedMemoryGather.IsSupported(codes.Weights);
}
