using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

/// <summary>The saved scoring precision (<see cref="TextClassifierModel.ScoringPrecision"/>): written to head.json only when
/// it is not fp32, applied on load, absent in older files (fp32), and only fp32 or bf16 accepted.</summary>
public class TextClassifierModelScoringPrecisionTests
{
    private static TextClassifierModel NewModel(InferencePrecision precision)
    {
        TorchRuntime.Seed(4);
        var tokenizer = new ByteLevelTokenizer();
        var config = MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = 16, Width = 64, Heads = 2, Layers = 1 };
        return new TextClassifierModel(new SequenceClassifier(config, 3, PoolingKind.Mean, 0), tokenizer, 16, CPU, 2, scoringPrecision: precision);
    }

    private static TextClassifierModel RoundTrip(ModelArchive archive)
    {
        using var saved = archive;
        var stream = new MemoryStream();
        archive.WriteTo(stream);
        stream.Position = 0;
        return TextClassifierModel.FromArchive(ModelArchive.ReadFrom(stream), CPU);
    }

    private static readonly (string, string?)[] Rows = [("a row of text longer than a window", null), ("short", null)];

    [Fact]
    public void Bf16_scoring_is_saved_and_applied_on_load_and_fp32_models_save_what_they_did()
    {
        using var fp32 = NewModel(InferencePrecision.Float32);
        using var bf16 = NewModel(InferencePrecision.BFloat16);
        Assert.DoesNotContain("ScoringPrecision", fp32.ToArchive().GetText(TextClassifierModel.HeadEntry));
        Assert.Contains("\"ScoringPrecision\":1", bf16.ToArchive().GetText(TextClassifierModel.HeadEntry));
        var expected = bf16.LogProbabilities(Rows);
        Assert.NotEqual(fp32.LogProbabilities(Rows), expected);
        using var loaded = RoundTrip(bf16.ToArchive());
        Assert.Equal((InferencePrecision.BFloat16, InferencePrecision.BFloat16), (loaded.ScoringPrecision, loaded.InferencePrecision));
        Assert.Equal(expected, loaded.LogProbabilities(Rows));
        using var old = RoundTrip(fp32.ToArchive());                                     // no field: fp32, as every older file
        Assert.Equal(InferencePrecision.Float32, old.InferencePrecision);
        Assert.Equal(fp32.LogProbabilities(Rows), old.LogProbabilities(Rows));
    }

    [Fact]
    public void An_int8_or_unknown_scoring_precision_is_rejected()
    {
        using var model = NewModel(InferencePrecision.Float32);
        foreach (int value in new[] { 2, 9 })
        {
            var archive = model.ToArchive().SetText(TextClassifierModel.HeadEntry,
                $$"""{"Classes":3,"Pooling":0,"MaxTokensPerRow":16,"MaxWindowsPerRow":2,"ScoringPrecision":{{value}}}""");
            Assert.Throws<InvalidDataException>(() => RoundTrip(archive));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => NewModel(InferencePrecision.Int8));
    }
}
