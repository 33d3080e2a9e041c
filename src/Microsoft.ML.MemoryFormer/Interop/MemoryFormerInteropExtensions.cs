using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// The ML.NET side of interop: <c>mlContext.Text.ImportLanguageModel(path)</c> gives a language-model transformer from a
/// safetensors folder or an official-code (GPT-NeoX) checkpoint, ready to generate, evaluate, save as an ML.NET model or
/// a checkpoint a classifier starts from; <c>lm.ExportSafetensors</c> and <c>lm.ExportGptNeoXCheckpoint</c> write a
/// trained transformer's model out (docs/scale.md).
/// </summary>
public static class MemoryFormerInteropExtensions
{
    /// <summary>
    /// Imports a model written by <c>ExportSafetensors</c> (a folder with <c>model.safetensors</c>) or by the official code
    /// (anything <c>LanguageModel.ImportGptNeoXCheckpoint</c> reads) onto the MLContext's device.
    /// </summary>
    /// <param name="catalog"><c>mlContext.Text</c>.</param>
    /// <param name="path">The safetensors folder, or the GPT-NeoX checkpoint file or folder.</param>
    /// <param name="tokenizer">The tokenizer; null takes the safetensors folder's description. Required for GPT-NeoX
    /// checkpoints, which record none (the official configs use the GPT-NeoX-20B tokenizer; pass the one the model was trained with).</param>
    /// <param name="options">GPT-NeoX settings the tensors do not record; ignored for safetensors.</param>
    /// <returns>The transformer (dispose it), with the default column names Text, Prompt and GeneratedText.</returns>
    public static MemoryFormerLanguageModelTransformer ImportLanguageModel(this MemoryFormerTextCatalog catalog, string path,
        ITextTokenizer? tokenizer = null, GptNeoXImportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        bool safetensors = Directory.Exists(path) && File.Exists(Path.Combine(path, SafetensorsModel.WeightsFile));
        if (tokenizer is null)
        {
            var description = safetensors ? SafetensorsModel.ReadTokenizer(path) : null;
            tokenizer = description is not null ? ITextTokenizer.FromDescription(description)
                : throw new ArgumentException(safetensors
                    ? $"'{path}' records no tokenizer; pass the one the model was trained with."
                    : "A GPT-NeoX checkpoint records no tokenizer; pass the one the model was trained with.", nameof(tokenizer));
        }
        var model = safetensors ? SafetensorsModel.Import(path) : GptNeoXCheckpoint.Import(path, options ?? new GptNeoXImportOptions());
        try
        {
            if (tokenizer.VocabularySize > model.Config.VocabularySize)
                throw new ArgumentException($"The tokenizer has {tokenizer.VocabularySize} ids but the model at '{path}' has a vocabulary of " +
                    $"{model.Config.VocabularySize}: pass the tokenizer the model was trained with.", nameof(tokenizer));
            var device = MLContextDevice.Of(catalog.Context);
            model.to(device);
            return new MemoryFormerLanguageModelTransformer(model, tokenizer, device, new GenerationOptions(),
                new LanguageModelColumns("Text", "Prompt", "GeneratedText"), generationBatchSize: 8, trainingResult: null);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Writes the transformer's model as safetensors with its config and tokenizer description (see <c>LanguageModel.ExportSafetensors</c>).</summary>
    /// <param name="languageModel">A fitted or loaded language model.</param>
    /// <param name="directory">The folder.</param>
    public static void ExportSafetensors(this MemoryFormerLanguageModelTransformer languageModel, string directory)
    {
        ArgumentNullException.ThrowIfNull(languageModel);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        languageModel.Model.ExportSafetensors(directory, languageModel.Tokenizer.Describe());    // its checks too (adaptive head)
    }

    /// <summary>Writes the transformer's model as a checkpoint of the official code (see <c>LanguageModel.ExportGptNeoXCheckpoint</c>).
    /// The tokenizer is not part of it: configure the same one on the official side (docs/scale.md).</summary>
    /// <param name="languageModel">A fitted or loaded language model.</param>
    /// <param name="directory">The save folder.</param>
    /// <param name="options">Layout and iteration; null: single file, iteration 0.</param>
    /// <returns>The <c>global_stepN</c> folder written.</returns>
    public static string ExportGptNeoXCheckpoint(this MemoryFormerLanguageModelTransformer languageModel, string directory,
        GptNeoXExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(languageModel);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        return languageModel.Model.ExportGptNeoXCheckpoint(directory, options);
    }
}
