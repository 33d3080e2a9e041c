namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>The error for a model used after it was disposed, with the usual cause and its fix.</summary>
internal static class DisposedModel
{
    /// <summary>Throws when <paramref name="disposed"/>, naming <paramref name="model"/>.</summary>
    public static void ThrowIf(bool disposed, string model)
    {
        if (disposed)
            throw new ObjectDisposedException(model, $"This {model} was disposed, by its transformer's Dispose or by a PredictionEngine " +
                "that owned it (ML.NET's CreatePredictionEngine owns the transformer unless told otherwise, and disposes it with the " +
                "engine). To share one model between engines, create them with new PredictionEngineOptions { OwnsTransformer = false }; " +
                "or load the model again.");
    }
}
