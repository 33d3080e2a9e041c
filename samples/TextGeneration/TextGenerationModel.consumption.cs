using Microsoft.ML;
using Microsoft.ML.MemoryFormer.MLNet;

namespace TextGeneration;

/// <summary>Consumption half of the model (Model Builder's <c>.consumption.cs</c>): load once, predict many times.</summary>
public static partial class TextGenerationModel
{
    /// <summary>Where Program.cs saves the trained model and where <see cref="Predict"/> loads it from.</summary>
    public static string ModelPath { get; set; } = Path.GetFullPath("TextGenerationModel.mlnet");

    // Created on first use: loading reads the weights from disk, so it happens once per process.
    private static readonly Lazy<PredictionEngine<ModelInput, ModelOutput>> PredictEngine = new(CreatePredictEngine, isThreadSafe: true);

    /// <summary>Continues <paramref name="input"/>'s <see cref="ModelInput.Prompt"/> with the saved model.</summary>
    /// <param name="input">The row to score; only <c>Prompt</c> is read.</param>
    public static ModelOutput Predict(ModelInput input) => PredictEngine.Value.Predict(input);

    private static PredictionEngine<ModelInput, ModelOutput> CreatePredictEngine()
    {
        var mlContext = new MLContext();
        ITransformer model = mlContext.Model.LoadChecked(ModelPath, out _);   // registers the MemoryFormer loaders; a damaged file is an InvalidDataException
        return mlContext.Model.CreatePredictionEngine<ModelInput, ModelOutput>(model);
    }
}
