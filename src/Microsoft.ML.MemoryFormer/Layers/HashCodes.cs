using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// The result of hashing N token vectors into K chunks: one table row and one weight per chunk.
/// Computed once and shared by every Memory Layer that reads the same input (Q, K and V; docs/model-spec.md, "Q/K/V sharing").
/// </summary>
/// <param name="Rows">int64 [N, K]: global row ids, code + k·2^τ, into a flat table of K·2^τ rows.</param>
/// <param name="Weights">float [N, K]: the differentiable weight of each selected row.</param>
internal readonly record struct HashCodes(Tensor Rows, Tensor Weights);
