using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>
/// The one way every loader (language model, pretrained checkpoint, text classifier, tabular model) turns archive
/// entries into a live module: build it, read its weights, move it to the device and wrap it; if any of these throws,
/// the module is disposed before the exception leaves, so a damaged file never leaks a model's tensors.
/// </summary>
internal static class ModuleLoader
{
    /// <summary>Builds a module with <paramref name="create"/>, loads <paramref name="archive"/>'s weights into it, moves it
    /// to <paramref name="device"/> (null leaves it on the CPU) and returns <paramref name="wrap"/>'s result.</summary>
    public static TResult Load<TModule, TResult>(ModelArchive archive, MemoryFormerConfig config, Func<TModule> create,
        Device? device, Func<TModule, TResult> wrap) where TModule : nn.Module
    {
        using var torchScope = TorchSharp.torch.NewDisposeScope();               // temporaries stay reachable (Runtime/TorchScope.cs)
        TModule module;
        using (GeneratorLease.Hold())                       // its random initial weights: not drawn between a training's reseed and draws
            module = create();
        try
        {
            ModuleWeights.Load(module, archive, config);
            if (device is not null) module.to(device);
            return wrap(module);
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }
}
