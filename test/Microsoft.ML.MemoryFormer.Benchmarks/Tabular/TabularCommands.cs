using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>Registers the <c>tabular</c> benchmark: one line in Program.cs, <c>config.AddTabularCommand()</c>.</summary>
internal static class TabularCommands
{
    public static IConfigurator AddTabularCommand(this IConfigurator config)
    {
        config.AddCommand<TabularCommand>("tabular")
            .WithDescription("MemoryFormer vs LightGBM, FastTree and SDCA on adult, penguins and housing.");
        return config;
    }
}
