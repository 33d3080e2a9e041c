using Microsoft.ML.MemoryFormer.Benchmarks.Perf;
using Microsoft.ML.MemoryFormer.Benchmarks.Tabular;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

internal static class Program
{
    private static int Main(string[] args)
    {
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("Microsoft.ML.MemoryFormer.Benchmarks");
            config.AddPerfCommands();
            config.AddTabularCommand();
        });
        return app.Run(args);
    }
}
