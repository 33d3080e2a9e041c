using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation.Sampling;

/// <summary>
/// Removes ids at or above the tokenizer's vocabulary size: the model's output layer may be wider (GPT-2's 50257 ids
/// padded to 50304), and those extra ids have no text.
/// </summary>
internal sealed class VocabularyLimit : ILogitsProcessor
{
    /// <param name="vocabularySize">Number of real ids, at least 1.</param>
    public VocabularyLimit(int vocabularySize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabularySize, 1);
        VocabularySize = vocabularySize;
    }

    /// <summary>Number of real ids.</summary>
    public int VocabularySize { get; }

    /// <inheritdoc />
    public Tensor Process(Tensor logits, IReadOnlyList<IReadOnlyList<int>> history)
    {
        long width = logits.shape[^1];
        if (width <= VocabularySize)
        {
            return logits.alias();
        }

        Tensor result = logits.clone();
        result.index_put_(Runtime.LiveScalars.NegativeInfinity, TensorIndex.Ellipsis, TensorIndex.Slice(VocabularySize));
        return result;
    }
}
