using Microsoft.ML.MemoryFormer.Data;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The MemoryFormer text classifiers on ML.NET's classification catalogs, named as ML.NET names its TorchSharp text
/// trainer (<c>TextClassification</c>): <c>mlContext.MulticlassClassification.Trainers.MemoryFormerTextClassification(...)</c>
/// and <c>mlContext.BinaryClassification.Trainers.MemoryFormerTextClassification(...)</c>, each with flat arguments or
/// a <see cref="MemoryFormerTextClassificationOptions"/>. The trainers on a Features vector are
/// <c>MemoryFormerTabular</c> (<see cref="TabularCatalogExtensions"/>).
/// </summary>
public static class MemoryFormerClassificationCatalog
{
    /// <summary>Fine-tunes a MemoryFormer encoder to predict a key-typed label (apply MapValueToKey first) from text.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="labelColumnName">The key-typed label column.</param>
    /// <param name="textColumnName">The text column.</param>
    /// <param name="secondTextColumnName">An optional second text column (sentence pairs).</param>
    /// <param name="maxTokensPerRow">Longest token window; a longer text is read as up to four windows whose logits are averaged (<see cref="MemoryFormerTextClassificationOptions.MaxWindowsPerRow"/>).</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="epochs">Passes over the training rows (default 5, as <see cref="MemoryFormerTextClassificationOptions"/>).</param>
    /// <param name="validationSet">Optional preprocessed rows validated after every epoch.</param>
    /// <param name="pretrainedCheckpointPath">Optional language-model checkpoint whose backbone and tokenizer are fine-tuned.</param>
    /// <param name="exampleWeightColumnName">An optional Single column of example weights ≥ 0
    /// (<see cref="MemoryFormerTextClassificationOptions.ExampleWeightColumnName"/>).</param>
    /// <returns>The trainer.</returns>
    /// <example>
    /// <code>
    /// var pipeline = mlContext.Transforms.Conversion.MapValueToKey("Label")
    ///     .Append(mlContext.MulticlassClassification.Trainers.MemoryFormerTextClassification(
    ///         labelColumnName: "Label", textColumnName: "Text", epochs: 5))
    ///     .Append(mlContext.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
    /// using var model = (IDisposable)pipeline.Fit(trainData);   // dispose to free the encoder
    /// </code>
    /// </example>
    public static MemoryFormerTextClassificationTrainer MemoryFormerTextClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string textColumnName = "Text", string? secondTextColumnName = null,
        int maxTokensPerRow = 128, int batchSize = 32, int epochs = 5, IDataView? validationSet = null,
        string? pretrainedCheckpointPath = null, string? exampleWeightColumnName = null) =>
        catalog.MemoryFormerTextClassification(Flat(labelColumnName, textColumnName, secondTextColumnName, maxTokensPerRow,
            batchSize, epochs, validationSet, pretrainedCheckpointPath, exampleWeightColumnName));

    /// <summary>Fine-tunes a MemoryFormer encoder to predict a key-typed label from text, with every option.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="options">The options.</param>
    /// <returns>The trainer.</returns>
    /// <example>
    /// <code>
    /// var trainer = mlContext.MulticlassClassification.Trainers.MemoryFormerTextClassification(
    ///     new MemoryFormerTextClassificationOptions { Epochs = 5, ValidationSet = validationData, EarlyStoppingPatience = 2 });
    /// </code>
    /// </example>
    public static MemoryFormerTextClassificationTrainer MemoryFormerTextClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, MemoryFormerTextClassificationOptions options) =>
        new(MLNetInternals.GetEnvironment(catalog), PredictionKind.MulticlassClassification, options);

    /// <summary>Fine-tunes a MemoryFormer encoder to predict a Boolean label from text.</summary>
    /// <param name="catalog">The binary trainers catalog.</param>
    /// <param name="labelColumnName">The Boolean label column.</param>
    /// <param name="textColumnName">The text column.</param>
    /// <param name="secondTextColumnName">An optional second text column (sentence pairs).</param>
    /// <param name="maxTokensPerRow">Longest token window; a longer text is read as up to four windows whose logits are averaged (<see cref="MemoryFormerTextClassificationOptions.MaxWindowsPerRow"/>).</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="epochs">Passes over the training rows (default 5, as <see cref="MemoryFormerTextClassificationOptions"/>).</param>
    /// <param name="validationSet">Optional preprocessed rows validated after every epoch.</param>
    /// <param name="pretrainedCheckpointPath">Optional language-model checkpoint whose backbone and tokenizer are fine-tuned.</param>
    /// <param name="exampleWeightColumnName">An optional Single column of example weights ≥ 0
    /// (<see cref="MemoryFormerTextClassificationOptions.ExampleWeightColumnName"/>).</param>
    /// <returns>The trainer.</returns>
    /// <example>
    /// <code>
    /// var trainer = mlContext.BinaryClassification.Trainers.MemoryFormerTextClassification(
    ///     labelColumnName: "IsSpam", textColumnName: "Text", epochs: 5);
    /// var metrics = mlContext.BinaryClassification.Evaluate(trainer.Fit(trainData).Transform(testData), "IsSpam");
    /// </code>
    /// </example>
    public static MemoryFormerTextClassificationTrainer MemoryFormerTextClassification(
        this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = "Label", string textColumnName = "Text", string? secondTextColumnName = null,
        int maxTokensPerRow = 128, int batchSize = 32, int epochs = 5, IDataView? validationSet = null,
        string? pretrainedCheckpointPath = null, string? exampleWeightColumnName = null) =>
        catalog.MemoryFormerTextClassification(Flat(labelColumnName, textColumnName, secondTextColumnName, maxTokensPerRow,
            batchSize, epochs, validationSet, pretrainedCheckpointPath, exampleWeightColumnName));

    /// <summary>Fine-tunes a MemoryFormer encoder to predict a Boolean label from text, with every option.</summary>
    /// <param name="catalog">The binary trainers catalog.</param>
    /// <param name="options">The options.</param>
    /// <returns>The trainer.</returns>
    /// <example>
    /// <code>
    /// var trainer = mlContext.BinaryClassification.Trainers.MemoryFormerTextClassification(
    ///     new MemoryFormerTextClassificationOptions { LabelColumnName = "IsSpam", ClassWeighting = ClassWeighting.Balanced });
    /// </code>
    /// </example>
    public static MemoryFormerTextClassificationTrainer MemoryFormerTextClassification(
        this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, MemoryFormerTextClassificationOptions options) =>
        new(MLNetInternals.GetEnvironment(catalog), PredictionKind.BinaryClassification, options);

    /// <summary>The former name of <see cref="MemoryFormerTextClassification(MulticlassClassificationCatalog.MulticlassClassificationTrainers, string, string, string?, int, int, int, IDataView?, string?, string?)"/>.</summary>
    /// <inheritdoc cref="MemoryFormerTextClassification(MulticlassClassificationCatalog.MulticlassClassificationTrainers, string, string, string?, int, int, int, IDataView?, string?, string?)"/>
    [Obsolete("Use MulticlassClassification.Trainers.MemoryFormerTextClassification (text) or MemoryFormerTabular (a Features vector).")]
    public static MemoryFormerTextClassificationTrainer MemoryFormer(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string textColumnName = "Text", string? secondTextColumnName = null,
        int maxTokensPerRow = 128, int batchSize = 32, int epochs = 5, IDataView? validationSet = null,
        string? pretrainedCheckpointPath = null) =>
        catalog.MemoryFormerTextClassification(labelColumnName, textColumnName, secondTextColumnName, maxTokensPerRow, batchSize,
            epochs, validationSet, pretrainedCheckpointPath);

    /// <summary>The former name of <see cref="MemoryFormerTextClassification(MulticlassClassificationCatalog.MulticlassClassificationTrainers, MemoryFormerTextClassificationOptions)"/>.</summary>
    /// <inheritdoc cref="MemoryFormerTextClassification(MulticlassClassificationCatalog.MulticlassClassificationTrainers, MemoryFormerTextClassificationOptions)"/>
    [Obsolete("Use MulticlassClassification.Trainers.MemoryFormerTextClassification(options).")]
    public static MemoryFormerTextClassificationTrainer MemoryFormer(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, MemoryFormerTextClassificationOptions options) =>
        catalog.MemoryFormerTextClassification(options);

    /// <summary>The former name of <see cref="MemoryFormerTextClassification(BinaryClassificationCatalog.BinaryClassificationTrainers, string, string, string?, int, int, int, IDataView?, string?, string?)"/>.</summary>
    /// <inheritdoc cref="MemoryFormerTextClassification(BinaryClassificationCatalog.BinaryClassificationTrainers, string, string, string?, int, int, int, IDataView?, string?, string?)"/>
    [Obsolete("Use BinaryClassification.Trainers.MemoryFormerTextClassification (text) or MemoryFormerTabular (a Features vector).")]
    public static MemoryFormerTextClassificationTrainer MemoryFormer(
        this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = "Label", string textColumnName = "Text", string? secondTextColumnName = null,
        int maxTokensPerRow = 128, int batchSize = 32, int epochs = 5, IDataView? validationSet = null,
        string? pretrainedCheckpointPath = null) =>
        catalog.MemoryFormerTextClassification(labelColumnName, textColumnName, secondTextColumnName, maxTokensPerRow, batchSize,
            epochs, validationSet, pretrainedCheckpointPath);

    /// <summary>The former name of <see cref="MemoryFormerTextClassification(BinaryClassificationCatalog.BinaryClassificationTrainers, MemoryFormerTextClassificationOptions)"/>.</summary>
    /// <inheritdoc cref="MemoryFormerTextClassification(BinaryClassificationCatalog.BinaryClassificationTrainers, MemoryFormerTextClassificationOptions)"/>
    [Obsolete("Use BinaryClassification.Trainers.MemoryFormerTextClassification(options).")]
    public static MemoryFormerTextClassificationTrainer MemoryFormer(
        this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, MemoryFormerTextClassificationOptions options) =>
        catalog.MemoryFormerTextClassification(options);

    private static MemoryFormerTextClassificationOptions Flat(string label, string text, string? second, int maxTokens,
        int batchSize, int epochs, IDataView? validationSet, string? checkpoint, string? weights) => new()
    {
        LabelColumnName = label, TextColumnName = text, SecondTextColumnName = second, MaxTokensPerRow = maxTokens,
        BatchSize = batchSize, Epochs = epochs, ValidationSet = validationSet, PretrainedCheckpointPath = checkpoint,
        ExampleWeightColumnName = weights,
    };
}
