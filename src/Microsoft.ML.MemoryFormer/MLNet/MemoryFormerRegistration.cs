using System.Reflection;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Registers MemoryFormer's model loaders with an ML.NET <see cref="ComponentCatalog"/>. Not needed to load a model:
/// <c>mlContext.Model.Load</c> finds the loaders by itself, in any <see cref="MLContext"/> and any process (ML.NET
/// registers the assembly a saved model names, and this assembly declares its loaders with ML.NET's
/// <c>LoadableClass</c> attributes). Calling it anyway is harmless:
/// <code>mlContext.ComponentCatalog.RegisterMemoryFormer();</code>
/// </summary>
/// <remarks>
/// Library versions before 0.1 needed this call before <c>Model.Load</c> in a context that did not train the model;
/// without it ML.NET failed with <c>FormatException: Couldn't load model: 'TransformerChain'</c>.
/// </remarks>
public static class MemoryFormerRegistration
{
    private sealed record Loader(Type TransformerType, string LoaderSignature, MethodInfo Create);

    private static readonly Lock Gate = new();
    private static readonly List<Loader> Loaders = [];
    private static readonly Lazy<bool> BuiltInsAdded = new(AddBuiltIns);

    /// <summary>
    /// Registers the loaders of every MemoryFormer transformer with <paramref name="catalog"/>. Calling it again
    /// on the same catalog does nothing.
    /// </summary>
    /// <param name="catalog">The catalog of the <see cref="MLContext"/> that will load models (<c>mlContext.ComponentCatalog</c>).</param>
    public static void RegisterMemoryFormer(this ComponentCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        // This assembly's loaders, through its LoadableClass attributes and exactly as Model.Load would register them
        // (once per catalog), so the two ways never register the same loader twice.
        catalog.RegisterAssembly(typeof(MemoryFormerRegistration).Assembly);
        foreach (var loader in Snapshot())
            MLNetInternals.RegisterLoader(catalog, loader.TransformerType, loader.LoaderSignature, loader.Create);
    }

    /// <summary>
    /// Adds <typeparamref name="T"/> to the loaders that <see cref="RegisterMemoryFormer"/> applies. Transformers of
    /// this assembly are found automatically; types elsewhere (tests, extensions) call this themselves.
    /// </summary>
    internal static void Register<T>() where T : class, ITransformer, IModelLoadable<T>
    {
        Func<IHostEnvironment, object, T> create = T.Create;
        var loader = new Loader(typeof(T), T.Signature.Validate().LoaderSignature, create.Method);
        lock (Gate)
        {
            if (!Loaders.Contains(loader))
                Loaders.Add(loader);
        }
    }

    /// <summary>The registered loaders, after adding this assembly's <see cref="IModelLoadable{TSelf}"/> types once.</summary>
    private static Loader[] Snapshot()
    {
        _ = BuiltInsAdded.Value;
        lock (Gate)
            return [.. Loaders];
    }

    private static bool AddBuiltIns()
    {
        var register = typeof(MemoryFormerRegistration).GetMethod(nameof(Register), BindingFlags.NonPublic | BindingFlags.Static)!;
        foreach (var type in typeof(MemoryFormerRegistration).Assembly.GetTypes().Where(IsLoadable))
            register.MakeGenericMethod(type).Invoke(null, null);
        return true;
    }

    private static bool IsLoadable(Type type) =>
        type is { IsClass: true, IsAbstract: false, IsGenericTypeDefinition: false }
        && type.GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IModelLoadable<>)
            && i.GetGenericArguments()[0] == type);
}
