using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>
/// Reads a language-model checkpoint written by the language-model trainer: a <see cref="ModelArchive"/> file with
/// <c>config.json</c> (<see cref="MemoryFormerConfig"/>), <c>tokenizer.json</c> (<see cref="TokenizerDescription"/>) and
/// <c>weights.bin</c> (the state dict of a <see cref="LanguageModel"/>).
/// </summary>
internal static class PretrainedCheckpoint
{
    /// <summary>Loads the model and its tokenizer; errors name the file and what is wrong with it.</summary>
    public static (LanguageModel Model, ITextTokenizer Tokenizer) Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"The pretrained checkpoint '{path}' does not exist. Pass the file saved by the MemoryFormer language-model trainer.", path);
        var archive = ModelArchive.Load(path);
        var config = MemoryFormerConfig.FromJson(archive.GetText(ModelArchive.ConfigEntry));
        var tokenizer = ITextTokenizer.FromDescription(TokenizerDescription.FromJson(archive.GetText(ModelArchive.TokenizerEntry)));
        var model = new LanguageModel(config);
        ModuleWeights.Load(model, archive.Get(ModelArchive.WeightsEntry), config);
        return (model, tokenizer);
    }
}
