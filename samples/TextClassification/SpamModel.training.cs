using Microsoft.ML;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;

namespace TextClassification;

/// <summary>Training side of the model, in the layout Model Builder generates.</summary>
public static partial class SpamModel
{
    /// <summary>
    /// The pipeline: text labels → keys (ML.NET's multiclass trainers want key labels), the MemoryFormer text
    /// classifier, keys → text labels again so predictions read "spam" rather than 1.
    /// </summary>
    /// <param name="mlContext">The ML.NET context (its seed makes training repeatable).</param>
    /// <param name="epochs">Passes over the training rows.</param>
    /// <param name="progress">Receives a report after training steps (null: none).</param>
    public static IEstimator<ITransformer> BuildPipeline(MLContext mlContext, int epochs = 4, IProgress<TrainingProgress>? progress = null) =>
        mlContext.Transforms.Conversion.MapValueToKey(outputColumnName: "Label", inputColumnName: "Label")
            .Append(mlContext.MulticlassClassification.Trainers.MemoryFormerTextClassification(new MemoryFormerTextClassificationOptions
            {
                LabelColumnName = "Label",
                TextColumnName = "Text",
                MaxTokensPerRow = 96,   // GPT-2 tokens; longer e-mails keep their first 95 tokens
                BatchSize = 32,
                Epochs = epochs,
                Progress = progress,
            }))
            .Append(mlContext.Transforms.Conversion.MapKeyToValue(outputColumnName: "PredictedLabel", inputColumnName: "PredictedLabel"));

    /// <summary>Trains the pipeline on <paramref name="trainData"/> and returns the fitted model.</summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="trainData">Rows with Label and Text columns.</param>
    /// <param name="epochs">Passes over the training rows.</param>
    /// <param name="progress">Receives a report after training steps (null: none).</param>
    public static ITransformer RetrainModel(MLContext mlContext, IDataView trainData, int epochs = 4, IProgress<TrainingProgress>? progress = null) =>
        BuildPipeline(mlContext, epochs, progress).Fit(trainData);
}
