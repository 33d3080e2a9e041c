using System.ComponentModel;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using Spectre.Console.Cli;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.TestHost;

/// <summary>
/// Saves versions of an 18 MB language model to the same path in a loop, for the crash-safe saving test: version v has
/// every parameter equal to v. Prints "READY", then "SAVING v" before and "SAVED v ms" after each save; the parent kills
/// it at varied moments and checks that the file always holds one complete version.
/// </summary>
internal sealed class SaveLoopCommand : Command<SaveLoopCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--path <PATH>")]
        [Description("The model file, saved again and again")]
        public string Path { get; init; } = "";

        [CommandOption("--first <N>")]
        [Description("The first version number")]
        public int First { get; init; } = 1;

        [CommandOption("--mlnet")]
        [Description("Save with mlContext.Model.SaveAtomically instead of the standalone checkpoint format")]
        public bool MLNet { get; init; }
    }

    /// <summary>Width 128, τ = 8, one layer: about 4.4 M parameters (18 MB), so one save takes on the order of 100 ms.</summary>
    public static MemoryFormerConfig Config { get; } = MemoryFormerConfig.Nano with { VocabularySize = 258, Width = 128, Heads = 4, BitsPerChunk = 8, Layers = 1 };

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var mlContext = new MLContext(seed: 1);
        using var model = new MemoryFormerLanguageModelTransformer(new LanguageModel(Config), new ByteLevelTokenizer(), torch.CPU,
            new GenerationOptions(), new LanguageModelColumns("Text", "Prompt", "GeneratedText"), generationBatchSize: 4, trainingResult: null);
        Console.WriteLine("READY");
        for (int version = settings.First; !cancellationToken.IsCancellationRequested; version++)
        {
            using (torch.no_grad())
                foreach (var parameter in model.Model.parameters())
                    parameter.fill_(version);
            Console.WriteLine($"SAVING {version}");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            if (settings.MLNet)
                mlContext.Model.SaveAtomically(model, null, settings.Path);
            else
                model.Save(settings.Path);
            Console.WriteLine($"SAVED {version} {clock.ElapsedMilliseconds}");
        }
        return 0;
    }
}
