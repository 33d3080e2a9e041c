using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>Checks, while loading, that the entries of a model archive belong to the same model.</summary>
internal static class ModelParts
{
    /// <summary>Throws <see cref="InvalidDataException"/> when the tokenizer produces ids outside the model's vocabulary.</summary>
    public static void CheckTokenizerFits(ITextTokenizer tokenizer, MemoryFormerConfig config)
    {
        if (tokenizer.VocabularySize > config.VocabularySize)
            throw new InvalidDataException($"The model's tokenizer has {tokenizer.VocabularySize} ids but its config's VocabularySize is " +
                $"{config.VocabularySize}: the '{ModelArchive.TokenizerEntry}' and '{ModelArchive.ConfigEntry}' entries do not belong together.");
    }
}
