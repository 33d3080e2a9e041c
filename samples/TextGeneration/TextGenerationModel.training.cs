using Microsoft.ML;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;

namespace TextGeneration;

/// <summary>Training half of the model (Model Builder's <c>.training.cs</c>): the pipeline and how to retrain it.</summary>
public static partial class TextGenerationModel
{
    /// <summary>
    /// The architecture: a byte-level MemoryFormer small enough to learn English spelling in a few CPU minutes
    /// (d = 128, 4 layers, 4 heads, τ = 8 so K = 16 hash tables of 256 rows per Memory Layer).
    /// </summary>
    public static MemoryFormerConfig Architecture { get; } = MemoryFormerConfig.Small256 with { Width = 128, Layers = 4, Heads = 4 };

    /// <summary>How the trained model writes text by default: mildly creative sampling, 200 bytes.</summary>
    public static GenerationOptions Generation { get; } = new() { MaxNewTokens = 200, Temperature = 0.8, TopK = 40 };

    /// <summary>
    /// Builds the pipeline: one estimator that trains a causal language model on the <c>Text</c> column and, once
    /// fitted, continues the <c>Prompt</c> column into <c>GeneratedText</c>.
    /// </summary>
    /// <param name="mlContext">The ML.NET context (its seed makes training repeatable).</param>
    /// <param name="steps">Optimizer steps; each sees 16 windows of 128 bytes.</param>
    /// <param name="validationData">Held-out documents for the validation loss reported during training.</param>
    /// <param name="progress">Receives step, loss, validation loss and speed.</param>
    /// <param name="cancellationToken">Stops training between steps (Ctrl+C).</param>
    public static IEstimator<MemoryFormerLanguageModelTransformer> BuildPipeline(MLContext mlContext, int steps,
        IDataView? validationData = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default) =>
        mlContext.Text.MemoryFormer(new MemoryFormerLanguageModelEstimator.Options
        {
            TextColumnName = nameof(ModelInput.Text),
            PromptColumnName = nameof(ModelInput.Prompt),
            GeneratedTextColumnName = nameof(ModelOutput.GeneratedText),
            Architecture = Architecture,
            ContextLength = 128,
            BatchSize = 16,
            MaxSteps = steps,
            WarmupSteps = Math.Min(50, steps / 10),
            ValidationSet = validationData,
            ValidateEvery = Math.Max(50, steps / 5),
            ReportEvery = 5,
            Generation = Generation,
            Progress = progress,
            CancellationToken = cancellationToken,
        });

    /// <summary>Trains the pipeline on <paramref name="trainData"/> and returns the fitted model.</summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="trainData">Rows whose <c>Text</c> column holds the training documents.</param>
    /// <param name="steps">Optimizer steps.</param>
    /// <param name="validationData">Held-out documents, or null.</param>
    /// <param name="progress">Progress callback.</param>
    /// <param name="cancellationToken">Stops training.</param>
    public static MemoryFormerLanguageModelTransformer RetrainModel(MLContext mlContext, IDataView trainData, int steps,
        IDataView? validationData = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default) =>
        BuildPipeline(mlContext, steps, validationData, progress, cancellationToken).Fit(trainData);

    /// <summary>
    /// Cuts a book into documents of about <paramref name="chunkBytes"/> characters at paragraph breaks, so that the
    /// end-of-text separator between documents is rare and falls where the text has a natural pause. (Generation
    /// stops at end-of-text: with short documents the model learns to end soon after a paragraph break.)
    /// </summary>
    /// <param name="text">The whole book.</param>
    /// <param name="chunkBytes">Target document length.</param>
    public static List<ModelInput> ToDocuments(string text, int chunkBytes = 4096)
    {
        var documents = new List<ModelInput>();
        var current = new System.Text.StringBuilder();
        foreach (var paragraph in text.Replace("\r\n", "\n").Split("\n\n"))
        {
            current.Append(paragraph).Append("\n\n");
            if (current.Length < chunkBytes) continue;
            documents.Add(new ModelInput { Text = current.ToString() });
            current.Clear();
        }
        if (current.Length > 0) documents.Add(new ModelInput { Text = current.ToString() });
        return documents;
    }
}
