using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The loader class an <c>[assembly: LoadableClass]</c> attribute names (MemoryFormerLoadableClasses.cs): ML.NET
/// calls its <c>Create(IHostEnvironment, ModelLoadContext)</c> (the context arrives as <see cref="object"/>, its type
/// being internal to ML.NET), which is <typeparamref name="T"/>'s own loader.
/// </summary>
/// <typeparam name="T">The transformer type.</typeparam>
internal static class ModelLoader<T> where T : class, ITransformer, IModelLoadable<T>
{
    /// <summary>Loads a <typeparamref name="T"/> from ML.NET's model load context.</summary>
    internal static T Create(IHostEnvironment env, object modelLoadContext) => T.Create(env, modelLoadContext);
}
