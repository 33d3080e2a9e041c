
namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// MemoryFormer trainers on a Features vector column, reached from ML.NET's trainer catalogs:
/// <c>mlContext.Regression.Trainers.MemoryFormer(...)</c>, and with <see cref="MemoryFormerTabularOptions"/> on the
/// binary and multiclass catalogs.
/// </summary>
public static class TabularCatalogExtensions
{
    /// <summary>A MemoryFormer regression on a Features vector; appends Score (Single).</summary>
    /// <param name="catalog">The regression trainers catalog.</param>
    /// <param name="labelColumnName">The Single label column.</param>
    /// <param name="featureColumnName">The known-size Single vector column (NaN = missing).</param>
    /// <param name="maxEpochs">Passes over the training rows at most.</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="learningRate">Peak learning rate of dense parameters.</param>
    /// <param name="validationSet">Rows for early stopping; null holds out 10% of the training rows.</param>
    public static MemoryFormerTabularTrainer MemoryFormer(this RegressionCatalog.RegressionTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", int maxEpochs = 30, int batchSize = 256,
        double learningRate = 1e-3, IDataView? validationSet = null) =>
        catalog.MemoryFormer(new MemoryFormerTabularOptions
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, MaxEpochs = maxEpochs,
            BatchSize = batchSize, LearningRate = learningRate, ValidationSet = validationSet,
        });

    /// <summary>A MemoryFormer regression on a Features vector, with all options; appends Score (Single).</summary>
    /// <param name="catalog">The regression trainers catalog.</param>
    /// <param name="options">Columns, architecture and training settings.</param>
    public static MemoryFormerTabularTrainer MemoryFormer(this RegressionCatalog.RegressionTrainers catalog,
        MemoryFormerTabularOptions options) =>
        new(MLNetInternals.GetEnvironment(catalog), options, PredictionKind.Regression);

    /// <summary>A MemoryFormer binary classifier on a Features vector and a Boolean label; appends Score, Probability, PredictedLabel.</summary>
    /// <param name="catalog">The binary classification trainers catalog.</param>
    /// <param name="options">Columns, architecture and training settings.</param>
    public static MemoryFormerTabularTrainer MemoryFormer(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        MemoryFormerTabularOptions options) =>
        new(MLNetInternals.GetEnvironment(catalog), options, PredictionKind.BinaryClassification);

    /// <summary>A MemoryFormer multiclass classifier on a Features vector and a key label; appends Score (probabilities) and PredictedLabel (key).</summary>
    /// <param name="catalog">The multiclass classification trainers catalog.</param>
    /// <param name="options">Columns, architecture and training settings.</param>
    public static MemoryFormerTabularTrainer MemoryFormer(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        MemoryFormerTabularOptions options) =>
        new(MLNetInternals.GetEnvironment(catalog), options, PredictionKind.MulticlassClassification);
}
