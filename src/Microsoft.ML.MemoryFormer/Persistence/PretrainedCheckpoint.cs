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
        using var archive = ModelArchive.Load(path);
        var config = archive.GetJson(ModelArchive.ConfigEntry, MemoryFormerConfig.FromJson);
        var tokenizer = archive.GetJson(ModelArchive.TokenizerEntry, json => ITextTokenizer.FromDescription(TokenizerDescription.FromJson(json)));
        ModelParts.CheckTokenizerFits(tokenizer, config);
        ModuleWeights.CheckSizeFits(config, archive, headParameters: LanguageModel.HeadParameterCount(config));
        return ModuleLoader.Load(archive, config, () => new LanguageModel(config), device: null, model => (model, tokenizer));
    }
}
