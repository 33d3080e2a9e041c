using Microsoft.ML;
using Microsoft.ML.MemoryFormer.MLNet;

namespace TabularClassification;

/// <summary>How the saved model is used (the part Model Builder generates as *.consumption.cs).</summary>
public static partial class PenguinsModel
{
    /// <summary>Where Program.cs saves the model and where <see cref="Predict"/> loads it from.</summary>
    public static string ModelPath { get; } = Path.Combine(AppContext.BaseDirectory, "PenguinsModel.mlnet");

    private static readonly Lazy<PredictionEngine<ModelInput, ModelOutput>> Engine = new(CreateEngine, isThreadSafe: true);

    /// <summary>Predicts the species of one penguin with the model saved at <see cref="ModelPath"/>.</summary>
    public static ModelOutput Predict(ModelInput input) => Engine.Value.Predict(input);

    private static PredictionEngine<ModelInput, ModelOutput> CreateEngine()
    {
        var mlContext = new MLContext();
        var model = mlContext.Model.LoadChecked(ModelPath, out _);   // registers the MemoryFormer loaders; a damaged file is an InvalidDataException
        return mlContext.Model.CreatePredictionEngine<ModelInput, ModelOutput>(model);
    }
}
