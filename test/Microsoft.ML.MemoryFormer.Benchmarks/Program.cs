// The benchmark program: one Spectre.Console.Cli command per benchmark, each in its own file.
// Run `build/build.sh bench --help` for the list, `build/build.sh bench lm --help` for one command's options.
using Microsoft.ML.MemoryFormer.Benchmarks;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("bench");
    config.AddCommand<LanguageModelBenchmarkCommand>("lm")
        .WithDescription("MemoryFormer vs the dense baseline as byte-level language models on tinyshakespeare");
    // Other benchmarks register here, one line each (classification, tabular, kernels).
});
return app.Run(args);
