using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.LanguageModeling;

/// <summary>Tiny inline corpora and a Nano-sized estimator setup shared by the language-model tests.</summary>
internal static class LanguageModelData
{
    public sealed class Document
    {
        public string Text { get; set; } = "";
    }

    public sealed class PromptRow
    {
        public string Prompt { get; set; } = "";
    }

    public sealed class Generated
    {
        public string Prompt { get; set; } = "";
        public string GeneratedText { get; set; } = "";
    }

    public static Document[] Corpus { get; } = Enumerable.Range(0, 12)
        .Select(i => new Document { Text = $"the cat sat on the mat {i % 3}. the dog ran to the log. " })
        .ToArray();

    public static GenerationOptions Greedy { get; } = new() { Temperature = 0, MaxNewTokens = 12 };

    public static MemoryFormerLanguageModelEstimator.Options NanoOptions(int steps = 20) => new()
    {
        Architecture = MemoryFormerConfig.Nano,
        ContextLength = 16,
        BatchSize = 4,
        MaxSteps = steps,
        WarmupSteps = 2,
        LearningRate = 1e-2,
        TableLearningRate = 3e-2,
        ValidationFraction = 0.1,
        ValidateEvery = 10,
        ReportEvery = 5,
        Generation = Greedy,
    };
}
