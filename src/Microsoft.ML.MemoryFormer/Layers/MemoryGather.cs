using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// The weighted row gather out[n] = Σₖ w[n,k] · table[rows[n,k]], the only hot op of a Memory Layer.
/// The reference path is libtorch's EmbeddingBag (sum mode, per-sample weights).
/// </summary>
internal static class MemoryGather
{
    /// <summary>codes.Rows, codes.Weights [N, K] and a table [R, h] → [N, h].</summary>
    public static Tensor Apply(HashCodes codes, EmbeddingBag table) =>
        table.call(codes.Rows, null, codes.Weights);                             // [N, h]
}
