using Microsoft.ML.MemoryFormer.Benchmarks.Buckets;
using Microsoft.ML.MemoryFormer.Benchmarks.Classification;
using Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;
using Microsoft.ML.MemoryFormer.Benchmarks.Perf;
using Microsoft.ML.MemoryFormer.Benchmarks.Serving;
using Microsoft.ML.MemoryFormer.Benchmarks.Soak;
using Microsoft.ML.MemoryFormer.Benchmarks.Tabular;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>The benchmark program: a registry of Spectre.Console.Cli commands, each benchmark in its own files.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("Microsoft.ML.MemoryFormer.Benchmarks");
            config.UseStrictParsing(); // a misspelt option is an error, not silently ignored
            config.AddPerfCommands();
            config.AddCommand<LanguageModelBenchmarkCommand>("lm")
                .WithDescription("MemoryFormer vs the dense baseline as byte-level language models on tinyshakespeare");
            config.AddCommand<TokenLanguageModelCommand>("lm-tokens")
                .WithDescription("MemoryFormer vs dense as GPT-2-token language models on WikiText-2, at equal steps and equal wall-clock");
            config.AddCommand<TokenCurvePlotCommand>("lm-tokens-curves")
                .WithDescription("One chart of the learning curves printed by several lm-tokens --eval-every runs");
            config.AddCommand<PretrainCommand>("pretrain")
                .WithDescription("Pretrain a small GPT-2-token MemoryFormer LM on the shared English text, saved as a checkpoint classifiers fine-tune from");
            config.AddCommand<BlimpCommand>("blimp")
                .WithDescription("Zero-shot BLiMP minimal-pair accuracy of a small MemoryFormer and dense language model");
            config.AddCommand<ClassificationCommand>("classification")
                .WithDescription("Text classification: MemoryFormer vs FeaturizeText + SdcaMaximumEntropy");
            config.AddTabularCommand();
            config.AddCommand<BucketsCommand>("buckets")
                .WithDescription("Bucket health of a briefly trained LM, dense AdamW vs lazy table updates, and a Fig. 4 style plot");
            config.AddCommand<SoakCommand>("soak")
                .WithDescription("A long training run logging loss, tokens/s and memory every minute, ending with a checkpoint/resume cycle");
            config.AddCommand<WebApiLoadCommand>("webapi")
                .WithDescription("Load on samples/WebApi over loopback: classification and streamed generation with 1, 8 and 32 clients, server memory over time");
        });
        return app.Run(args);
    }
}
