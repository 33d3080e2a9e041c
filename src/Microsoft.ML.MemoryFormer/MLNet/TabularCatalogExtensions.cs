using Microsoft.ML.MemoryFormer.Data;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The MemoryFormer trainers on a Features vector column, on ML.NET's regression, binary and multiclass catalogs:
/// <c>mlContext.Regression.Trainers.MemoryFormerTabular(...)</c>, <c>mlContext.BinaryClassification.Trainers.MemoryFormerTabular(...)</c>
/// and <c>mlContext.MulticlassClassification.Trainers.MemoryFormerTabular(...)</c>, each with flat arguments or a
/// <see cref="MemoryFormerTabularOptions"/>. The text classifiers are <c>MemoryFormerTextClassification</c>
/// (<see cref="MemoryFormerClassificationCatalog"/>).
/// </summary>
public static class TabularCatalogExtensions
{
    /// <summary>A MemoryFormer regression on a Features vector; appends Score (Single).</summary>
    /// <param name="catalog">The regression trainers catalog.</param>
    /// <param name="labelColumnName">The Single label column.</param>
    /// <param name="featureColumnName">The known-size Single vector column (NaN = missing).</param>
    /// <param name="epochs">Passes over the training rows at most (early stopping may end sooner).</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="learningRate">Peak learning rate of dense parameters (the tables take 3×).</param>
    /// <param name="validationSet">Rows for early stopping; null holds out 10% of the training rows.</param>
    /// <param name="exampleWeightColumnName">An optional Single column of example weights ≥ 0
    /// (<see cref="MemoryFormerTabularOptions.ExampleWeightColumnName"/>).</param>
    /// <returns>The trainer.</returns>
    /// <example>
    /// <code>
    /// var pipeline = mlContext.Transforms.Concatenate("Features", "Culmen", "Flipper")
    ///     .Append(mlContext.Regression.Trainers.MemoryFormerTabular(labelColumnName: "BodyMass", epochs: 50));
    /// using var model = (IDisposable)pipeline.Fit(trainData);
    /// var metrics = mlContext.Regression.Evaluate(((ITransformer)model).Transform(testData), "BodyMass");
    /// </code>
    /// </example>
    public static MemoryFormerTabularTrainer MemoryFormerTabular(this RegressionCatalog.RegressionTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", int epochs = 30, int batchSize = 256,
        double learningRate = 1e-3, IDataView? validationSet = null, string? exampleWeightColumnName = null) =>
        catalog.MemoryFormerTabular(Flat(labelColumnName, featureColumnName, epochs, batchSize, learningRate, validationSet,
            exampleWeightColumnName));

    /// <summary>A MemoryFormer regression on a Features vector, with every option; appends Score (Single).</summary>
    /// <param name="catalog">The regression trainers catalog.</param>
    /// <param name="options">Columns, architecture and training settings.</param>
    /// <returns>The trainer.</returns>
    /// <example>
    /// <code>
    /// var trainer = mlContext.Regression.Trainers.MemoryFormerTabular(new MemoryFormerTabularOptions
    /// {
    ///     LabelColumnName = "BodyMass", Architecture = TabularPresets.Small with { Width = 64 }, Epochs = 100, Seed = 1,
    /// });
    /// </code>
    /// </example>
    public static MemoryFormerTabularTrainer MemoryFormerTabular(this RegressionCatalog.RegressionTrainers catalog, MemoryFormerTabularOptions options) =>
        new(MLNetInternals.GetEnvironment(catalog), options, PredictionKind.Regression);

    /// <summary>A MemoryFormer binary classification on a Features vector; appends Score, Probability, PredictedLabel.</summary>
    /// <param name="catalog">The binary classification trainers catalog.</param>
    /// <param name="labelColumnName">The Boolean label column.</param>
    /// <param name="featureColumnName">The known-size Single vector column (NaN = missing).</param>
    /// <param name="epochs">Passes over the training rows at most (early stopping may end sooner).</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="learningRate">Peak learning rate of dense parameters (the tables take 3×).</param>
    /// <param name="validationSet">Rows for early stopping; null holds out 10% of the training rows.</param>
    /// <param name="exampleWeightColumnName">An optional Single column of example weights ≥ 0
    /// (<see cref="MemoryFormerTabularOptions.ExampleWeightColumnName"/>).</param>
    /// <returns>The trainer.</returns>
    /// <example>
    /// <code>
    /// var trainer = mlContext.BinaryClassification.Trainers.MemoryFormerTabular(labelColumnName: "IsAdelie", epochs: 20);
    /// var metrics = mlContext.BinaryClassification.Evaluate(trainer.Fit(trainData).Transform(testData), "IsAdelie");
    /// </code>
    /// </example>
    public static MemoryFormerTabularTrainer MemoryFormerTabular(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", int epochs = 30, int batchSize = 256,
        double learningRate = 1e-3, IDataView? validationSet = null, string? exampleWeightColumnName = null) =>
        catalog.MemoryFormerTabular(Flat(labelColumnName, featureColumnName, epochs, batchSize, learningRate, validationSet,
            exampleWeightColumnName));

    /// <summary>A MemoryFormer binary classification on a Features vector, with every option; appends Score, Probability, PredictedLabel.</summary>
    /// <param name="catalog">The binary classification trainers catalog.</param>
    /// <param name="options">Columns, architecture and training settings.</param>
    /// <returns>The trainer.</returns>
    /// <example>
    /// <code>
    /// var trainer = mlContext.BinaryClassification.Trainers.MemoryFormerTabular(new MemoryFormerTabularOptions
    /// {
    ///     LabelColumnName = "IsAdelie", ValidationSet = validationData, EarlyStoppingPatience = 3,
    /// });
    /// </code>
    /// </example>
    public static MemoryFormerTabularTrainer MemoryFormerTabular(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, MemoryFormerTabularOptions options) =>
        new(MLNetInternals.GetEnvironment(catalog), options, PredictionKind.BinaryClassification);

    /// <summary>A MemoryFormer multiclass classification on a Features vector; appends Score (class probabilities) and PredictedLabel (key).</summary>
    /// <param name="catalog">The multiclass classification trainers catalog.</param>
    /// <param name="labelColumnName">The key-typed label column (apply MapValueToKey first).</param>
    /// <param name="featureColumnName">The known-size Single vector column (NaN = missing).</param>
    /// <param name="epochs">Passes over the training rows at most (early stopping may end sooner).</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="learningRate">Peak learning rate of dense parameters (the tables take 3×).</param>
    /// <param name="validationSet">Rows for early stopping; null holds out 10% of the training rows.</param>
    /// <param name="exampleWeightColumnName">An optional Single column of example weights ≥ 0
    /// (<see cref="MemoryFormerTabularOptions.ExampleWeightColumnName"/>).</param>
    /// <returns>The trainer.</returns>
    /// <example>
    /// <code>
    /// var pipeline = mlContext.Transforms.Conversion.MapValueToKey("Label")
    ///     .Append(mlContext.Transforms.Concatenate("Features", "Culmen", "Flipper", "Mass"))
    ///     .Append(mlContext.MulticlassClassification.Trainers.MemoryFormerTabular(epochs: 20))
    ///     .Append(mlContext.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
    /// </code>
    /// </example>
    public static MemoryFormerTabularTrainer MemoryFormerTabular(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", int epochs = 30, int batchSize = 256,
        double learningRate = 1e-3, IDataView? validationSet = null, string? exampleWeightColumnName = null) =>
        catalog.MemoryFormerTabular(Flat(labelColumnName, featureColumnName, epochs, batchSize, learningRate, validationSet,
            exampleWeightColumnName));

    /// <summary>A MemoryFormer multiclass classification on a Features vector, with every option; appends Score (class probabilities) and PredictedLabel (key).</summary>
    /// <param name="catalog">The multiclass classification trainers catalog.</param>
    /// <param name="options">Columns, architecture and training settings.</param>
    /// <returns>The trainer.</returns>
    /// <example>
    /// <code>
    /// var trainer = mlContext.MulticlassClassification.Trainers.MemoryFormerTabular(new MemoryFormerTabularOptions
    /// {
    ///     Epochs = 50, TableMomentPrecision = MomentPrecision.BFloat16, CheckpointPath = "penguins.ckpt", Seed = 1,
    /// });
    /// </code>
    /// </example>
    public static MemoryFormerTabularTrainer MemoryFormerTabular(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, MemoryFormerTabularOptions options) =>
        new(MLNetInternals.GetEnvironment(catalog), options, PredictionKind.MulticlassClassification);

    /// <summary>The former name of <c>MemoryFormerTabular(...)</c> on the regression catalog.</summary>
    /// <param name="catalog">The regression trainers catalog.</param>
    /// <param name="labelColumnName">The Single label column.</param>
    /// <param name="featureColumnName">The known-size Single vector column (NaN = missing).</param>
    /// <param name="maxEpochs">Passes over the training rows at most.</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="learningRate">Peak learning rate of dense parameters.</param>
    /// <param name="validationSet">Rows for early stopping; null holds out 10% of the training rows.</param>
    /// <returns>The trainer.</returns>
    [Obsolete("Use Regression.Trainers.MemoryFormerTabular: text and tabular trainers are told apart by name.")]
    public static MemoryFormerTabularTrainer MemoryFormer(this RegressionCatalog.RegressionTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", int maxEpochs = 30, int batchSize = 256,
        double learningRate = 1e-3, IDataView? validationSet = null) =>
        catalog.MemoryFormerTabular(labelColumnName, featureColumnName, maxEpochs, batchSize, learningRate, validationSet);

    /// <summary>The former name of <c>MemoryFormerTabular(options)</c> on the regression catalog.</summary>
    /// <param name="catalog">The trainers catalog.</param>
    /// <param name="options">Columns, architecture and training settings.</param>
    /// <returns>The trainer.</returns>
    [Obsolete("Use MemoryFormerTabular(options): text and tabular trainers are told apart by name.")]
    public static MemoryFormerTabularTrainer MemoryFormer(this RegressionCatalog.RegressionTrainers catalog, MemoryFormerTabularOptions options) =>
        catalog.MemoryFormerTabular(options);

    /// <summary>The former name of <c>MemoryFormerTabular(options)</c> on the binary classification catalog.</summary>
    /// <param name="catalog">The trainers catalog.</param>
    /// <param name="options">Columns, architecture and training settings.</param>
    /// <returns>The trainer.</returns>
    [Obsolete("Use MemoryFormerTabular(options): text and tabular trainers are told apart by name.")]
    public static MemoryFormerTabularTrainer MemoryFormer(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog, MemoryFormerTabularOptions options) =>
        catalog.MemoryFormerTabular(options);

    /// <summary>The former name of <c>MemoryFormerTabular(options)</c> on the multiclass classification catalog.</summary>
    /// <param name="catalog">The trainers catalog.</param>
    /// <param name="options">Columns, architecture and training settings.</param>
    /// <returns>The trainer.</returns>
    [Obsolete("Use MemoryFormerTabular(options): text and tabular trainers are told apart by name.")]
    public static MemoryFormerTabularTrainer MemoryFormer(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, MemoryFormerTabularOptions options) =>
        catalog.MemoryFormerTabular(options);

    private static MemoryFormerTabularOptions Flat(string label, string features, int epochs, int batchSize, double learningRate,
        IDataView? validationSet, string? weights) => new()
    {
        LabelColumnName = label, FeatureColumnName = features, Epochs = epochs, BatchSize = batchSize,
        LearningRate = learningRate, ValidationSet = validationSet, ExampleWeightColumnName = weights,
    };
}
