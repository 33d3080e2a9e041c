using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// <c>mlContext.Text.ImportLanguageModel(path)</c>: an ML.NET language-model transformer from a safetensors folder or an
/// official-code (GPT-NeoX) checkpoint, ready to generate, evaluate, save as an ML.NET model, or start a classifier from.
/// </summary>
public static class MemoryFormerInteropCatalogExtensions
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
            ModelParts.CheckTokenizerFits(tokenizer, model.Config);
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
}
