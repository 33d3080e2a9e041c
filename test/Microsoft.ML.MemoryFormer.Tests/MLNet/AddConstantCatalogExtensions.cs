using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>How a catalog extension reaches the environment behind an ML.NET catalog.</summary>
internal static class AddConstantCatalogExtensions
{
    public static AddConstantEstimator AddConstant(this TransformsCatalog catalog, string outputColumnName,
        string inputColumnName, float constant) =>
        new(MLNetInternals.GetEnvironment(catalog), outputColumnName, inputColumnName, constant);
}
