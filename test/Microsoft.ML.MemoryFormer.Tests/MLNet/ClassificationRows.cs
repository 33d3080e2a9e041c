using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>Tiny inline data sets and a fast trainer setup shared by the classification tests.</summary>
internal static class ClassificationRows
{
    public sealed class TextRow
    {
        public string Text { get; set; } = "";
        public string Label { get; set; } = "";
    }

    public sealed class BinaryRow
    {
        public string Text { get; set; } = "";
        public bool Label { get; set; }
    }

    public sealed class Prediction
    {
        public uint PredictedLabel { get; set; }
        public float[] Score { get; set; } = [];
    }

    private static readonly (string Label, string[] Texts)[] Topics =
    [
        ("weather", ["rain today", "sunny and warm", "rain and wind", "cold snow", "warm sun", "snow and rain"]),
        ("money", ["send money", "bank card", "my bank pays", "money card", "card fee", "pay the bank"]),
        ("food", ["pizza please", "eat pasta", "hot pizza", "pasta and cheese", "eat cheese", "cheese pizza"]),
    ];

    /// <summary>18 rows, 3 classes, each with its own keywords.</summary>
    public static TextRow[] Multiclass() => Topics.SelectMany(t => t.Texts.Select(x => new TextRow { Text = x, Label = t.Label })).ToArray();

    /// <summary>12 rows: spam shouts about prizes, ham is ordinary chat.</summary>
    public static BinaryRow[] Binary() =>
    [
        .. new[] { "WIN a FREE prize now", "FREE cash WIN", "claim your PRIZE", "WIN WIN FREE", "URGENT prize claim", "FREE entry WIN cash" }
            .Select(t => new BinaryRow { Text = t, Label = true }),
        .. new[] { "see you at lunch", "ok thanks", "call me later", "how are you", "lunch at noon?", "thanks see you" }
            .Select(t => new BinaryRow { Text = t, Label = false }),
    ];

    /// <summary>Options for a Nano-sized byte-level encoder that fits the inline rows in a few seconds.</summary>
    public static MemoryFormerTextClassificationOptions Options(int epochs = 30) => new()
    {
        Architecture = MemoryFormerConfig.Nano with { Width = 32, Layers = 1 },
        Tokenizer = new ByteLevelTokenizer(),
        MaxTokensPerRow = 32,
        BatchSize = 6,
        Epochs = epochs,
        LearningRate = 1e-2,
        TableLearningRate = 3e-2,
        WarmupFraction = 0.05,
        Dropout = 0,
        Seed = 1,
    };
}
