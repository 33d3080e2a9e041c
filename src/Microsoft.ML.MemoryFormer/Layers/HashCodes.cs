using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// The result of hashing N token vectors into K chunks: one table row and one weight per chunk.
/// Computed once and shared by every Memory Layer that reads the same input (Q, K and V; docs/model-spec.md, "Q/K/V sharing").
/// </summary>
/// <param name="Rows">int64 [N, K]: global row ids, code + k·2^τ, into a flat table of K·2^τ rows.</param>
/// <param name="Weights">float [N, K]: the differentiable weight of each selected row.</param>
internal readonly record struct HashCodes(Tensor Rows, Tensor Weights)
{
    /// <summary>The same rows as int32 in a pooled array, when the fused hash wrote them (<see cref="Runtime.KernelSettings.HashWritesRows32"/>):
    /// the first fused gather over a table of exactly K·2^τ rows takes it instead of copying <see cref="Rows"/>; null otherwise.</summary>
    public Kernels.PooledRows? Rows32 { get; init; }
}
