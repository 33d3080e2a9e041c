using Microsoft.ML.MemoryFormer.MLNet;

// In ML.NET's namespace so that `using Microsoft.ML;` is enough to see mlContext.Text.
namespace Microsoft.ML;

/// <summary>Adds <c>mlContext.Text</c>, the MemoryFormer text catalog, to <see cref="MLContext"/>.</summary>
public static class MemoryFormerMLContextExtensions
{
    extension(MLContext mlContext)
    {
        /// <summary>MemoryFormer text tasks: <c>mlContext.Text.MemoryFormer(...)</c> trains a language model.</summary>
        public MemoryFormerTextCatalog Text => new(mlContext);
    }
}
