using Microsoft.ML;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Text;

namespace WebApi;

/// <summary>
/// Two small models to serve when you have none of your own (<c>--train-demo</c>): a 4-topic text classifier and a
/// byte-level language model, both trained in seconds on sentences made here, and saved as ML.NET zips.
/// </summary>
public static class DemoModels
{
    private static readonly (string Label, string[] Subjects, string[] Phrases)[] Topics =
    [
        ("weather", ["rain", "snow", "wind", "sunshine", "fog", "the storm", "a cold front", "thunder"],
            ["is expected tonight", "will clear by noon", "covers the hills", "is coming from the west", "keeps the roads wet"]),
        ("finance", ["the bank", "my card", "the loan", "interest", "the budget", "the invoice", "my salary", "the tax bill"],
            ["was paid today", "is due next month", "went up again", "needs a transfer", "shows a new fee"]),
        ("food", ["the pizza", "fresh pasta", "the soup", "a cheese plate", "the salad", "warm bread", "the curry", "dessert"],
            ["tastes great", "is served hot", "needs more salt", "comes with rice", "was cooked at home"]),
        ("sport", ["the team", "our striker", "the coach", "the runner", "the match", "the final", "the goalkeeper", "the league"],
            ["won on penalties", "trains every morning", "lost in extra time", "scored twice", "set a new record"]),
    ];

    /// <summary>The demo's labelled sentences (every subject with every phrase of its topic: 160 rows).</summary>
    public static IReadOnlyList<DemoRow> Rows { get; } =
        [.. Topics.SelectMany(t => t.Subjects.SelectMany(s => t.Phrases.Select(p => new DemoRow { Label = t.Label, Text = $"{s} {p}." })))];

    /// <summary>Trains both models and saves them (atomically) to the two paths, creating their folders.</summary>
    /// <param name="classifierPath">Where the classifier zip goes.</param>
    /// <param name="languageModelPath">Where the language-model zip goes.</param>
    /// <param name="size">Demo or test size.</param>
    public static void Train(string classifierPath, string languageModelPath, DemoModelSize size = DemoModelSize.Demo)
    {
        var mlContext = new MLContext(seed: 1);
        var (classifier, languageModel) = Trainers(mlContext, size);

        // MapValueToKey is fitted apart so the saved pipeline needs only a Text column at prediction time.
        var rows = mlContext.Data.LoadFromEnumerable(Rows);
        var keyed = mlContext.Transforms.Conversion.MapValueToKey("Label").Fit(rows).Transform(rows);
        var classifierModel = classifier.Append(mlContext.Transforms.Conversion.MapKeyToValue("PredictedLabel")).Fit(keyed);
        Save(mlContext, classifierModel, keyed.Schema, classifierPath);

        // One long document, so the model rarely learns to end its text (end-of-text separates documents).
        var documents = mlContext.Data.LoadFromEnumerable(new[] { new DemoRow { Text = string.Join(" ", Rows.Select(r => r.Text)) } });
        using var lm = languageModel.Fit(documents);
        Save(mlContext, lm, documents.Schema, languageModelPath);
        (classifierModel as IDisposable)?.Dispose();
    }

    /// <summary>
    /// Every trainer call of the sample, in one place: the text classifier and the language model with the settings
    /// of <paramref name="size"/>.
    /// </summary>
    private static (IEstimator<ITransformer> Classifier, IEstimator<MemoryFormerLanguageModelTransformer> LanguageModel) Trainers(
        MLContext mlContext, DemoModelSize size)
    {
        bool tiny = size == DemoModelSize.Tiny;
        var architecture = tiny
            ? MemoryFormerConfig.Nano with { Width = 16, Layers = 1 }
            : MemoryFormerConfig.Nano with { Width = 128, Layers = 2, Heads = 4, BitsPerChunk = 8 };
        var classifier = mlContext.MulticlassClassification.Trainers.MemoryFormerTextClassification(new MemoryFormerTextClassificationOptions
        {
            Architecture = architecture,
            Tokenizer = new ByteLevelTokenizer(),
            MaxTokensPerRow = 48,
            BatchSize = 16,
            Epochs = tiny ? 3 : 8,
            LearningRate = 1e-2,
            TableLearningRate = 3e-2,
            Dropout = 0,
        });
        var languageModel = mlContext.Text.MemoryFormer(new MemoryFormerLanguageModelEstimator.Options
        {
            Architecture = architecture,
            ContextLength = tiny ? 16 : 64,
            BatchSize = 16,
            MaxSteps = tiny ? 20 : 600,
            WarmupSteps = tiny ? 2 : 20,
            LearningRate = 1e-2,
            TableLearningRate = 3e-2,
            ValidationFraction = 0,
            Generation = new GenerationOptions { MaxNewTokens = 64, Temperature = 0.8, TopK = 20 },
        });
        return (classifier, languageModel);
    }

    private static void Save(MLContext mlContext, ITransformer model, DataViewSchema schema, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        mlContext.Model.SaveAtomically(model, schema, path);
    }
}
