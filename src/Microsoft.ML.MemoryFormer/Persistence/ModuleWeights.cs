using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>Saves and loads a module's state dict (TorchSharp format) with errors that say what did not match.</summary>
/// <remarks>
/// Before TorchSharp reads anything, <see cref="StateDictLayout"/> walks the bytes and checks them against the module
/// (names, dtypes, shapes, total length): TorchSharp trusts the declared rank and allocates from it, so damaged or
/// hostile bytes are refused here instead. <see cref="CheckSizeFits"/> refuses a config whose model would be larger
/// than its weights before the model is built, so a config cannot make the loader allocate more than the file holds.
/// </remarks>
internal static class ModuleWeights
{
    /// <summary>The state dict as bytes.</summary>
    public static byte[] ToBytes(torch.nn.Module module)
    {
        using var stream = new MemoryStream();
        module.save(stream);
        return stream.ToArray();
    }

    /// <summary>
    /// Throws <see cref="InvalidDataException"/> when a model built from <paramref name="config"/> (plus
    /// <paramref name="headParameters"/> parameters outside the backbone) needs more float32 values than
    /// <paramref name="weights"/> holds. Call it before building the model.
    /// </summary>
    public static void CheckSizeFits(MemoryFormerConfig config, byte[] weights, double headParameters)
    {
        double backbone = (double)config.VocabularySize * config.Width + (double)config.Layers * CostEstimator.BlockParameters(config);
        double needed = 4 * (backbone + Math.Max(0, headParameters));
        if (needed > weights.Length)
            throw new InvalidDataException(
                $"The model's config (Width = {config.Width}, Layers = {config.Layers}, BitsPerChunk = {config.BitsPerChunk}, " +
                $"VocabularySize = {config.VocabularySize}) needs at least {needed:0} bytes of weights, but '{ModelArchive.WeightsEntry}' " +
                $"holds {weights.Length}: the config and the weights do not belong together.");
    }

    /// <summary>Loads weights written by <see cref="ToBytes"/> into a module built from <paramref name="config"/>.</summary>
    /// <exception cref="InvalidDataException">The weights were saved from another architecture or are damaged.</exception>
    public static void Load(torch.nn.Module module, byte[] weights, MemoryFormerConfig config)
    {
        try
        {
            StateDictLayout.Check(weights, module.state_dict());
            using var stream = new MemoryStream(weights, writable: false);
            module.load(stream, strict: true);
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or InvalidOperationException or EndOfStreamException or IOException)
        {
            throw new InvalidDataException(
                $"The saved weights do not fit a {config.Kind} model with Width = {config.Width}, Layers = {config.Layers}, " +
                $"Heads = {config.Heads}, BitsPerChunk = {config.BitsPerChunk}, VocabularySize = {config.VocabularySize}: " +
                $"{e.Message} Load them with the config they were trained with.", e);
        }
    }
}
