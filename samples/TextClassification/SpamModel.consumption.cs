using Microsoft.ML;
using Microsoft.ML.MemoryFormer.MLNet;

namespace TextClassification;

/// <summary>Consumption side of the model, in the layout Model Builder generates.</summary>
public static partial class SpamModel
{
    /// <summary>Where Program.cs saves the trained model and <see cref="Predict"/> loads it from.</summary>
    public static string ModelPath { get; set; } = Path.Combine(AppContext.BaseDirectory, "SpamModel.mlnet");

    private static readonly Lazy<PredictionEngine<ModelInput, ModelOutput>> PredictEngine = new(CreatePredictEngine, true);

    /// <summary>Predicts the class of one e-mail with the model saved at <see cref="ModelPath"/>.</summary>
    /// <param name="input">The e-mail.</param>
    public static ModelOutput Predict(ModelInput input) => PredictEngine.Value.Predict(input);

    private static PredictionEngine<ModelInput, ModelOutput> CreatePredictEngine()
    {
        var mlContext = new MLContext();
        var model = mlContext.Model.LoadChecked(ModelPath, out _);   // registers the MemoryFormer loaders; a damaged file is an InvalidDataException
        return mlContext.Model.CreatePredictionEngine<ModelInput, ModelOutput>(model);
    }
}
