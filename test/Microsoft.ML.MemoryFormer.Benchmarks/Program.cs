using Microsoft.ML.MemoryFormer.Benchmarks.Classification;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(config => config.AddCommand<ClassificationCommand>("classification")
    .WithDescription("Text classification: MemoryFormer vs FeaturizeText + SdcaMaximumEntropy."));
return app.Run(args);
