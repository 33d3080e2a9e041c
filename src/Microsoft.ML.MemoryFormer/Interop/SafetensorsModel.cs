using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// A <see cref="LanguageModel"/> as a folder: <c>model.safetensors</c> (every parameter under its state-dict name, float32),
/// <c>config.json</c> (<see cref="SafetensorsConfig"/>) and, when known, <c>tokenizer_description.json</c>
/// (<see cref="TokenizerDescription"/>; not Hugging Face's <c>tokenizer.json</c>).
/// </summary>
internal static class SafetensorsModel
{
    public const string WeightsFile = "model.safetensors";
    public const string ConfigFile = "config.json";
    public const string TokenizerFile = "tokenizer_description.json";

    /// <summary>Writes the folder (created if needed).</summary>
    public static void Export(LanguageModel model, string folder, TokenizerDescription? tokenizer)
    {
        Directory.CreateDirectory(folder);
        var tensors = model.state_dict().Select(kv => (kv.Key, kv.Value)).ToList();
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["producer"] = "Microsoft.ML.MemoryFormer" };
        SafetensorsFile.Write(Path.Combine(folder, WeightsFile), tensors, metadata);
        File.WriteAllText(Path.Combine(folder, ConfigFile), SafetensorsConfig.ToJson(model.Config));
        var tokenizerPath = Path.Combine(folder, TokenizerFile);
        if (tokenizer is not null) File.WriteAllText(tokenizerPath, tokenizer.ToJson());
        else if (File.Exists(tokenizerPath)) File.Delete(tokenizerPath);
    }

    /// <summary>Reads the tokenizer description of the folder, or null when it has none.</summary>
    public static TokenizerDescription? ReadTokenizer(string folder)
    {
        var path = Path.Combine(folder, TokenizerFile);
        if (!File.Exists(path)) return null;
        try
        {
            return TokenizerDescription.FromJson(File.ReadAllText(path));
        }
        catch (Exception e) when (e is ArgumentException or System.Text.Json.JsonException)
        {
            throw new InvalidDataException($"'{path}' is not a tokenizer description: {e.Message}", e);
        }
    }

    /// <summary>Reads the folder; the header and the config are checked against each other before the model is built.</summary>
    public static LanguageModel Import(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"The folder '{folder}' does not exist; pass the folder written by ExportSafetensors.");
        var configPath = Path.Combine(folder, ConfigFile);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"'{folder}' has no {ConfigFile}.", configPath);
        var config = SafetensorsConfig.FromJson(File.ReadAllText(configPath), configPath);
        using var file = SafetensorsFile.Open(Path.Combine(folder, WeightsFile));
        file.VerifyChecksum();
        long stored = file.Entries.Sum(e => TensorDtypes.Count(e.Shape));
        long needed = CostEstimator.LanguageModelParameters(config);
        if (needed != stored)
            throw new InvalidDataException($"'{configPath}' describes a model of {needed} parameters but '{WeightsFile}' holds {stored} values: they do not belong together.");
        LanguageModel model;
        using (GeneratorLease.Hold())                     // its random initial weights, overwritten below: not amid a training's draws
            model = new LanguageModel(config);
        try
        {
            var state = model.state_dict();
            var byName = file.Entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
            var unexpected = byName.Keys.Where(k => !state.ContainsKey(k)).ToList();
            if (unexpected.Count > 0) throw new InvalidDataException($"'{WeightsFile}' holds tensors the model does not have, e.g. '{unexpected[0]}'.");
            using (torch.no_grad())
            {
                foreach (var (name, tensor) in state)
                {
                    if (!byName.TryGetValue(name, out var entry)) throw new InvalidDataException($"'{WeightsFile}' lacks tensor '{name}'.");
                    if (!entry.Shape.SequenceEqual(tensor.shape))
                        throw new InvalidDataException($"Tensor '{name}' has shape [{string.Join(", ", entry.Shape)}]; the config gives [{string.Join(", ", tensor.shape)}].");
                    using var value = file.ReadFloat32(entry);
                    tensor.copy_(value);
                }
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
