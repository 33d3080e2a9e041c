using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Implemented by every transformer of this library that ML.NET can save and load: it names the model signature
/// and the loader that <see cref="MemoryFormerRegistration"/> registers with a <see cref="ComponentCatalog"/>.
/// </summary>
/// <typeparam name="TSelf">The transformer type itself.</typeparam>
internal interface IModelLoadable<TSelf> where TSelf : class, ITransformer, IModelLoadable<TSelf>
{
    /// <summary>What the transformer writes into ML.NET's model header; also names its loader.</summary>
    static abstract ModelSignatureInfo Signature { get; }

    /// <summary>ML.NET's loader entry point; <paramref name="modelLoadContext"/> is ML.NET's internal ModelLoadContext.</summary>
    static abstract TSelf Create(IHostEnvironment env, object modelLoadContext);
}
