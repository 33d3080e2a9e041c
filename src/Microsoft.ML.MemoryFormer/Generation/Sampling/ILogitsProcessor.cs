using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation.Sampling;

/// <summary>
/// One step of turning a model's next-token logits into a sampling distribution (a penalty, temperature, a
/// truncation). <see cref="TokenSampler"/> chains them; each returns a new tensor and leaves its input unchanged.
/// </summary>
internal interface ILogitsProcessor
{
    /// <summary>Transforms next-token logits.</summary>
    /// <param name="logits">[B, V] float logits, one row per sequence.</param>
    /// <param name="history">Per row, the ids already in the sequence (prompt and output); B entries.</param>
    /// <returns>[B, V] transformed logits; removed tokens are -∞.</returns>
    Tensor Process(Tensor logits, IReadOnlyList<IReadOnlyList<int>> history);
}
