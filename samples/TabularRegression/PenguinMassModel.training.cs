using Microsoft.ML;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;

namespace TabularRegression;

/// <summary>How the body-mass model is built and trained (the part Model Builder generates as *.training.cs).</summary>
public static partial class PenguinMassModel
{
    /// <summary>
    /// Body mass → Label; species, island and sex → one-hot; bill and flipper measurements → one Features vector
    /// (NaN where missing); then the MemoryFormer regression (one token per Features slot).
    /// </summary>
    public static IEstimator<ITransformer> BuildPipeline(MLContext mlContext, IProgress<TrainingProgress>? progress = null)
    {
        var options = new MemoryFormerTabularOptions
        {
            LabelColumnName = "Label", FeatureColumnName = "Features", BatchSize = 32, Epochs = 80,
            EarlyStoppingPatience = 15, ValidationFraction = 0.15, Progress = progress,
        };
        return mlContext.Transforms.CopyColumns("Label", nameof(ModelInput.BodyMassG))
            .Append(mlContext.Transforms.Categorical.OneHotEncoding([new("SpeciesOneHot", nameof(ModelInput.Species)),
                new("IslandOneHot", nameof(ModelInput.Island)), new("SexOneHot", nameof(ModelInput.Sex))]))
            .Append(mlContext.Transforms.Concatenate("Features", nameof(ModelInput.BillLengthMm), nameof(ModelInput.BillDepthMm),
                nameof(ModelInput.FlipperLengthMm), "SpeciesOneHot", "IslandOneHot", "SexOneHot"))
            .Append(mlContext.Regression.Trainers.MemoryFormerTabular(options));
    }

    /// <summary>Trains the pipeline on <paramref name="trainData"/> (rows without a body mass are skipped).</summary>
    public static ITransformer RetrainModel(MLContext mlContext, IDataView trainData, IProgress<TrainingProgress>? progress = null) =>
        BuildPipeline(mlContext, progress).Fit(trainData);
}
