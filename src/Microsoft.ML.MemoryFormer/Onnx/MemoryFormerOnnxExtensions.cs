using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Onnx.Protobuf;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Onnx;

/// <summary>
/// Exports trained MemoryFormer models to ONNX (opset 18, standard operators only, no custom ops), for ONNX Runtime
/// and ML.NET's <c>ApplyOnnxModel</c>. Input, output and metadata names are in <see cref="MemoryFormerOnnxNames"/>;
/// batch and sequence axes are dynamic. The graph is the eval-mode forward pass: the language model's logits for a
/// token window (optionally with a KV cache for incremental decoding), the text classifier's and the tabular model's
/// scores. Tokenization stays outside the graph; the tokenizer's description is in the metadata. Files are limited
/// to 2 GiB of weights (protobuf).
/// </summary>
public static class MemoryFormerOnnxExtensions
{
    /// <summary>
    /// ML.NET-style entry point: writes <paramref name="transformer"/> as an ONNX model to <paramref name="stream"/>.
    /// <paramref name="inputData"/>, when given, is checked to be data the transformer can score.
    /// </summary>
    public static void ConvertToOnnx(this ModelOperationsCatalog catalog, MemoryFormerTextClassificationTransformer transformer,
        IDataView? inputData, Stream stream)
    {
        CheckData(catalog, transformer, inputData);
        transformer.ExportToOnnx(stream);
    }

    /// <inheritdoc cref="ConvertToOnnx(ModelOperationsCatalog, MemoryFormerTextClassificationTransformer, IDataView?, Stream)"/>
    public static void ConvertToOnnx(this ModelOperationsCatalog catalog, MemoryFormerTabularTransformer transformer,
        IDataView? inputData, Stream stream)
    {
        CheckData(catalog, transformer, inputData);
        transformer.ExportToOnnx(stream);
    }

    /// <summary>Writes the language model of <paramref name="transformer"/> (logits for a token window) to <paramref name="stream"/>.</summary>
    public static void ConvertToOnnx(this ModelOperationsCatalog catalog, MemoryFormerLanguageModelTransformer transformer, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        transformer.ExportToOnnx(stream);
    }

    /// <summary>
    /// Writes the classifier as ONNX: inputs <c>input_ids</c>, <c>attention_mask</c> int64 [batch, sequence]; outputs
    /// <c>logits</c>, <c>probabilities</c> float [batch, classes]. Rows are encoded as the model's tokenizer does
    /// (layout and tokenizer in the metadata).
    /// </summary>
    public static void ExportToOnnx(this MemoryFormerTextClassificationTransformer transformer, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        Write(() => OnnxModelExporter.TextClassifier(transformer.Model, transformer.Kind, transformer.ClassNames), stream);
    }

    /// <summary>
    /// Writes the tabular model as ONNX: input <c>features</c> float [batch, F] (raw, NaN = missing; the training
    /// standardisation is in the graph); outputs <c>logits</c> and <c>probabilities</c> [batch, classes], or
    /// <c>score</c> [batch, 1] for regression. An ensemble (<see cref="MemoryFormerTabularTransformer.EnsembleSize"/> &gt; 1)
    /// exports as one graph holding every member: <c>score</c> is their mean, <c>probabilities</c> their mean class
    /// probabilities and <c>logits</c> the log of that mean, as the transformer scores.
    /// </summary>
    public static void ExportToOnnx(this MemoryFormerTabularTransformer transformer, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        Write(() => OnnxModelExporter.Tabular(transformer.Ensemble.Members), stream);
    }

    /// <summary>
    /// Writes the language model as ONNX: inputs <c>input_ids</c>, <c>attention_mask</c> int64 [batch, sequence];
    /// output <c>logits</c> float [batch, sequence, vocabulary] (causal). With <paramref name="kvCache"/>, the graph
    /// also takes <c>past_key.i</c>/<c>past_value.i</c> and returns <c>present_key.i</c>/<c>present_value.i</c> per
    /// layer (see <see cref="MemoryFormerOnnxNames.PastKeyPrefix"/>) and <c>attention_mask</c> covers past and new
    /// positions, for incremental decoding; without it, decoding reruns the whole window.
    /// </summary>
    /// <param name="transformer">The fitted language model.</param>
    /// <param name="stream">Where the ONNX model is written.</param>
    /// <param name="kvCache">Whether to export the KV-cache variant.</param>
    public static void ExportToOnnx(this MemoryFormerLanguageModelTransformer transformer, Stream stream, bool kvCache = false)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        Write(() => OnnxModelExporter.LanguageModel(transformer.Model, transformer.Tokenizer, kvCache), stream);
    }

    /// <inheritdoc cref="ExportToOnnx(MemoryFormerLanguageModelTransformer, Stream, bool)"/>
    /// <param name="model">The language model.</param>
    /// <param name="stream">Where the ONNX model is written.</param>
    /// <param name="tokenizer">The tokenizer to describe in the metadata, if any.</param>
    /// <param name="kvCache">Whether to export the KV-cache variant.</param>
    public static void ExportToOnnx(this LanguageModel model, Stream stream, ITextTokenizer? tokenizer = null, bool kvCache = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        Write(() => OnnxModelExporter.LanguageModel(model, tokenizer, kvCache), stream);
    }

    /// <summary>Writes the classifier as ONNX to the file <paramref name="path"/> (created or overwritten).</summary>
    public static void ExportToOnnx(this MemoryFormerTextClassificationTransformer transformer, string path) =>
        ToFile(path, s => transformer.ExportToOnnx(s));

    /// <summary>Writes the tabular model as ONNX to the file <paramref name="path"/> (created or overwritten).</summary>
    public static void ExportToOnnx(this MemoryFormerTabularTransformer transformer, string path) =>
        ToFile(path, s => transformer.ExportToOnnx(s));

    /// <summary>Writes the language model as ONNX to the file <paramref name="path"/> (created or overwritten).</summary>
    /// <param name="transformer">The fitted language model.</param>
    /// <param name="path">The file to write.</param>
    /// <param name="kvCache">Whether to export the KV-cache variant.</param>
    public static void ExportToOnnx(this MemoryFormerLanguageModelTransformer transformer, string path, bool kvCache = false) =>
        ToFile(path, s => transformer.ExportToOnnx(s, kvCache));

    /// <summary>
    /// The ML.NET step in front of an exported text classifier in <c>ApplyOnnxModel</c>: encodes
    /// <paramref name="textColumnName"/> (and <paramref name="secondTextColumnName"/> for text pairs) with the tokenizer
    /// described in the ONNX model's metadata into the vector columns <c>input_ids</c> and <c>attention_mask</c>
    /// (int64, max_tokens_per_row slots, padding masked out). The mapping is not saveable with the ML.NET model.
    /// </summary>
    /// <remarks>The exported graph scores one window, and this step keeps a text's first max_tokens_per_row tokens: a row
    /// longer than that, which the ML.NET model scores as the mean over up to <c>MaxWindowsPerRow</c> windows, gets other
    /// probabilities through ONNX (rows that fit one window match). Score long documents through the ML.NET model.</remarks>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="onnxModelPath">An ONNX file written by a text classifier's <c>ExportToOnnx</c>/<c>ConvertToOnnx</c>.</param>
    /// <param name="textColumnName">The text column.</param>
    /// <param name="secondTextColumnName">The second text of a pair, if the classifier was trained on pairs.</param>
    public static IEstimator<ITransformer> TokenizeForOnnx(this TransformsCatalog catalog, string onnxModelPath,
        string textColumnName = "Text", string? secondTextColumnName = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(onnxModelPath);
        ArgumentException.ThrowIfNullOrEmpty(textColumnName);
        using var file = File.OpenRead(onnxModelPath);
        return OnnxTextTokens.Estimator(catalog, OnnxTextTokens.ReadEncoder(file), textColumnName, secondTextColumnName);
    }

    /// <summary>
    /// The <c>shapeDictionary</c> ML.NET's <c>ApplyOnnxModel</c> needs for an exported text classifier (its sequence
    /// axis is dynamic, the columns of <see cref="TokenizeForOnnx"/> are not): <c>input_ids</c> and
    /// <c>attention_mask</c> → [1, max_tokens_per_row].
    /// </summary>
    /// <param name="onnxModelPath">An ONNX file written by a text classifier's <c>ExportToOnnx</c>/<c>ConvertToOnnx</c>.</param>
    public static IDictionary<string, int[]> TextInputShapes(string onnxModelPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(onnxModelPath);
        using var file = File.OpenRead(onnxModelPath);
        int n = OnnxTextTokens.ReadEncoder(file).MaxTokens;
        return new Dictionary<string, int[]> { [MemoryFormerOnnxNames.InputIds] = [1, n], [MemoryFormerOnnxNames.AttentionMask] = [1, n] };
    }

    private static void Write(Func<ModelProto> build, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("The stream must be writable.", nameof(stream));
        using var noGrad = no_grad();
        OnnxModelExporter.Write(build(), stream);
    }

    private static void ToFile(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.Create(path);
        write(file);
    }

    private static void CheckData(ModelOperationsCatalog catalog, ITransformer transformer, IDataView? inputData)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(transformer);
        if (inputData is not null) transformer.GetOutputSchema(inputData.Schema);   // throws, naming the column, if it cannot score it
    }
}
