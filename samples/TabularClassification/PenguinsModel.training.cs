using Microsoft.ML;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;

namespace TabularClassification;

/// <summary>How the penguin species model is built and trained (the part Model Builder generates as *.training.cs).</summary>
public static partial class PenguinsModel
{
    /// <summary>
    /// Species → key; island and sex → one-hot; the four measurements and the year → one Features vector; then the
    /// MemoryFormer classifier (one token per Features slot); then the predicted key back to the species name.
    /// </summary>
    public static IEstimator<ITransformer> BuildPipeline(MLContext mlContext, IProgress<TrainingProgress>? progress = null)
    {
        var options = new MemoryFormerTabularOptions
        {
            LabelColumnName = "Label", FeatureColumnName = "Features", BatchSize = 32, Epochs = 60,
            EarlyStoppingPatience = 10, ValidationFraction = 0.15, Progress = progress,
        };
        return mlContext.Transforms.Conversion.MapValueToKey("Label", nameof(ModelInput.Species))
            .Append(mlContext.Transforms.Categorical.OneHotEncoding([new("IslandOneHot", nameof(ModelInput.Island)),
                new("SexOneHot", nameof(ModelInput.Sex))]))
            .Append(mlContext.Transforms.Concatenate("Features", nameof(ModelInput.BillLengthMm), nameof(ModelInput.BillDepthMm),
                nameof(ModelInput.FlipperLengthMm), nameof(ModelInput.BodyMassG), nameof(ModelInput.Year), "IslandOneHot", "SexOneHot"))
            .Append(mlContext.MulticlassClassification.Trainers.MemoryFormerTabular(options))
            .Append(mlContext.Transforms.Conversion.MapKeyToValue(nameof(ModelOutput.PredictedSpecies), "PredictedLabel"));
    }

    /// <summary>Trains the pipeline on <paramref name="trainData"/>.</summary>
    public static ITransformer RetrainModel(MLContext mlContext, IDataView trainData, IProgress<TrainingProgress>? progress = null) =>
        BuildPipeline(mlContext, progress).Fit(trainData);
}
