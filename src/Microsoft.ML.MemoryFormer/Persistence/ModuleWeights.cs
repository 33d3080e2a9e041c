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
/// The weights go between TorchSharp and the archive as a stream: a standalone file neither writes nor reads them
/// through a managed array (no 2 GB limit, no copy of the model in memory).
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

    /// <summary>Sets the archive's <see cref="ModelArchive.WeightsEntry"/> to <paramref name="module"/>'s state dict, written when the archive is saved.</summary>
    public static ModelArchive WithWeights(this ModelArchive archive, torch.nn.Module module) =>
        archive.SetStreamed(ModelArchive.WeightsEntry, stream => module.save(stream));

    /// <summary>
    /// Throws <see cref="InvalidDataException"/> when a model built from <paramref name="config"/> (plus
    /// <paramref name="headParameters"/> parameters outside the backbone) needs more float32 values than the archive's
    /// weights hold. Call it before building the model.
    /// </summary>
    public static void CheckSizeFits(MemoryFormerConfig config, ModelArchive archive, double headParameters)
    {
        long stored = archive.LengthOf(ModelArchive.WeightsEntry);
        double backbone = (double)config.VocabularySize * config.Width + (double)config.Layers * CostEstimator.BlockParameters(config);
        double needed = 4 * (backbone + Math.Max(0, headParameters));
        if (needed > stored)
            throw new InvalidDataException(
                $"The model's config (Width = {config.Width}, Layers = {config.Layers}, BitsPerChunk = {config.BitsPerChunk}, " +
                $"VocabularySize = {config.VocabularySize}) needs at least {needed:0} bytes of weights, but '{ModelArchive.WeightsEntry}' " +
                $"holds {stored}: the config and the weights do not belong together.");
    }

    /// <summary>Loads the archive's weights (written by <see cref="WithWeights"/>) into a module built from <paramref name="config"/>.</summary>
    /// <exception cref="InvalidDataException">The weights were saved from another architecture or are damaged.</exception>
    public static void Load(torch.nn.Module module, ModelArchive archive, MemoryFormerConfig config) =>
        archive.ReadEntry(ModelArchive.WeightsEntry, weights => Load(module, weights, config));

    /// <summary>Loads weights written by <see cref="ToBytes"/> into a module built from <paramref name="config"/>.</summary>
    /// <exception cref="InvalidDataException">The weights were saved from another architecture or are damaged.</exception>
    public static void Load(torch.nn.Module module, byte[] weights, MemoryFormerConfig config)
    {
        using var stream = new MemoryStream(weights, writable: false);
        Load(module, stream, config);
    }

    private static void Load(torch.nn.Module module, Stream weights, MemoryFormerConfig config)
    {
        try
        {
            StateDictLayout.Check(weights, module.state_dict());
            weights.Position = 0;
            module.load(weights, strict: true);
            Layers.Kernels.TableVersion.BumpAll(module);                      // raw writes: bf16 table copies must see them
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
