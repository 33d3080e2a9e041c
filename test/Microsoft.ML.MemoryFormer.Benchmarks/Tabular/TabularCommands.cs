using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>Registers the <c>tabular</c> and <c>tabular-explain</c> benchmarks: one line in Program.cs, <c>config.AddTabularCommand()</c>.</summary>
internal static class TabularCommands
{
    public static IConfigurator AddTabularCommand(this IConfigurator config)
    {
        config.AddCommand<TabularCommand>("tabular")
            .WithDescription("MemoryFormer vs LightGBM, FastTree and SDCA on adult, penguins and housing.");
        config.AddCommand<TabularExplainCommand>("tabular-explain")
            .WithDescription("Per-row explanations: MemoryFormer's occlusion against FastTree's feature contributions, feature rankings compared.");
        return config;
    }
}
