using Microsoft.ML.MemoryFormer.Configuration;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>Saves and loads a module's state dict (TorchSharp format) with errors that say what did not match.</summary>
internal static class ModuleWeights
{
    /// <summary>The state dict as bytes.</summary>
    public static byte[] ToBytes(torch.nn.Module module)
    {
        using var stream = new MemoryStream();
        module.save(stream);
        return stream.ToArray();
    }

    /// <summary>Loads weights written by <see cref="ToBytes"/> into a module built from <paramref name="config"/>.</summary>
    /// <exception cref="InvalidDataException">The weights were saved from another architecture or are damaged.</exception>
    public static void Load(torch.nn.Module module, byte[] weights, MemoryFormerConfig config)
    {
        try
        {
            using var stream = new MemoryStream(weights, writable: false);
            module.load(stream, strict: true);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or EndOfStreamException or IOException)
        {
            throw new InvalidDataException(
                $"The saved weights do not fit a {config.Kind} model with Width = {config.Width}, Layers = {config.Layers}, " +
                $"Heads = {config.Heads}, BitsPerChunk = {config.BitsPerChunk}, VocabularySize = {config.VocabularySize}: " +
                $"{e.Message} Load them with the config they were trained with.", e);
        }
    }
}
