
namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// <c>MemoryFormer</c> trainers on ML.NET's classification catalogs:
/// <c>mlContext.MulticlassClassification.Trainers.MemoryFormer(...)</c> and
/// <c>mlContext.BinaryClassification.Trainers.MemoryFormer(...)</c>, each with flat arguments or an options object.
/// </summary>
public static class MemoryFormerClassificationCatalog
{
    /// <summary>Fine-tunes a MemoryFormer encoder to predict a key-typed label (apply MapValueToKey first) from text.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="labelColumnName">The key-typed label column.</param>
    /// <param name="textColumnName">The text column.</param>
    /// <param name="secondTextColumnName">An optional second text column (sentence pairs).</param>
    /// <param name="maxTokensPerRow">Longest token row; texts keep their first tokens.</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="epochs">Passes over the training rows.</param>
    /// <param name="validationSet">Optional preprocessed rows validated after every epoch.</param>
    /// <param name="pretrainedCheckpointPath">Optional language-model checkpoint whose backbone and tokenizer are fine-tuned.</param>
    /// <returns>The trainer.</returns>
    public static MemoryFormerTextClassificationTrainer MemoryFormer(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string textColumnName = "Text", string? secondTextColumnName = null,
        int maxTokensPerRow = 128, int batchSize = 32, int epochs = 10, IDataView? validationSet = null,
        string? pretrainedCheckpointPath = null) =>
        catalog.MemoryFormer(Flat(labelColumnName, textColumnName, secondTextColumnName, maxTokensPerRow, batchSize, epochs,
            validationSet, pretrainedCheckpointPath));

    /// <summary>Fine-tunes a MemoryFormer encoder to predict a key-typed label from text, with every option.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="options">The options.</param>
    /// <returns>The trainer.</returns>
    public static MemoryFormerTextClassificationTrainer MemoryFormer(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, MemoryFormerTextClassificationOptions options) =>
        new(MLNetInternals.GetEnvironment(catalog), PredictionKind.MulticlassClassification, options);

    /// <summary>Fine-tunes a MemoryFormer encoder to predict a Boolean label from text.</summary>
    /// <param name="catalog">The binary trainers catalog.</param>
    /// <param name="labelColumnName">The Boolean label column.</param>
    /// <param name="textColumnName">The text column.</param>
    /// <param name="secondTextColumnName">An optional second text column (sentence pairs).</param>
    /// <param name="maxTokensPerRow">Longest token row; texts keep their first tokens.</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="epochs">Passes over the training rows.</param>
    /// <param name="validationSet">Optional preprocessed rows validated after every epoch.</param>
    /// <param name="pretrainedCheckpointPath">Optional language-model checkpoint whose backbone and tokenizer are fine-tuned.</param>
    /// <returns>The trainer.</returns>
    public static MemoryFormerTextClassificationTrainer MemoryFormer(
        this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = "Label", string textColumnName = "Text", string? secondTextColumnName = null,
        int maxTokensPerRow = 128, int batchSize = 32, int epochs = 10, IDataView? validationSet = null,
        string? pretrainedCheckpointPath = null) =>
        catalog.MemoryFormer(Flat(labelColumnName, textColumnName, secondTextColumnName, maxTokensPerRow, batchSize, epochs,
            validationSet, pretrainedCheckpointPath));

    /// <summary>Fine-tunes a MemoryFormer encoder to predict a Boolean label from text, with every option.</summary>
    /// <param name="catalog">The binary trainers catalog.</param>
    /// <param name="options">The options.</param>
    /// <returns>The trainer.</returns>
    public static MemoryFormerTextClassificationTrainer MemoryFormer(
        this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, MemoryFormerTextClassificationOptions options) =>
        new(MLNetInternals.GetEnvironment(catalog), PredictionKind.BinaryClassification, options);

    private static MemoryFormerTextClassificationOptions Flat(string label, string text, string? second, int maxTokens,
        int batchSize, int epochs, IDataView? validationSet, string? checkpoint) => new()
    {
        LabelColumnName = label, TextColumnName = text, SecondTextColumnName = second, MaxTokensPerRow = maxTokens,
        BatchSize = batchSize, Epochs = epochs, ValidationSet = validationSet, PretrainedCheckpointPath = checkpoint,
    };
}
