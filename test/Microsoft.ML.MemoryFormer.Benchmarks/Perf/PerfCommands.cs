using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>Registers the <c>perf</c> branch (issue 7): one line in Program.cs, <c>config.AddPerfCommands()</c>.</summary>
internal static class PerfCommands
{
    public static IConfigurator AddPerfCommands(this IConfigurator config)
    {
        config.AddBranch("perf", perf =>
        {
            perf.SetDescription("Performance benchmarks of issue 7: MemoryFormer vs dense, side by side in one run.");
            perf.AddCommand<LayerCommand>("layer").WithDescription("Memory Layer vs Linear, fwd and fwd+bwd, d × N sweep.");
            perf.AddCommand<ProfileCommand>("profile").WithDescription("Phase breakdown of one Memory Layer fwd+bwd.");
        });
        return config;
    }
}
