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
    /// <summary>codes.Rows, codes.Weights [N, K], the layer's table [R, h] and bias [h] → [N, h], bias added.</summary>
    public static Tensor Apply(HashCodes codes, MemoryLayer layer) => ApplyShared(codes, [layer])[0];

    /// <summary>Several layers read with the same codes (Q, K, V) → one [N, h] per layer, biases added.</summary>
    /// <remarks>The fused kernel starts each output row from the bias (<see cref="FusedMemoryGather.FoldBias"/>); the
    /// EmbeddingBag path adds it afterwards.</remarks>
    public static Tensor[] ApplyShared(HashCodes codes, IReadOnlyList<MemoryLayer> layers)
    {
        if (!layers.All(l => UsesFusedKernel(codes, l.Table)))
            return layers.Select(l => LiveScalars.Add(l.Bag.call(codes.Rows, null, codes.Weights), l.Bias)).ToArray(); // [N, h] each
        var tables = layers.Select(l => (Tensor)l.Table).ToArray();
        var gradients = layers.Select(l => (TableGradient?)l.Gradient).ToArray();
        if (FusedMemoryGather.FoldBias)
            return FusedMemoryGather.ApplyMany(codes.Rows, codes.Weights, tables, gradients, layers.Select(l => (Tensor)l.Bias).ToArray());
        var outputs = FusedMemoryGather.ApplyMany(codes.Rows, codes.Weights, tables, gradients);
        return outputs.Select((y, i) => LiveScalars.Add(y, layers[i].Bias)).ToArray();                         // [N, h] each
    }

    private static bool UsesFusedKernel(HashCodes codes, Tensor table) =>
        TorchRuntime.UseFusedKernels && FusedMemoryGather.IsSupported(table) && FusedMemoryGather.IsSupported(codes.Weights);
}
