using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

public class TextClassifierModelWindowsTests
{
    private const int WindowTokens = 8;   // 7 text tokens per window

    private static TextClassifierModel NewModel(int maxWindows, double temperature = 1, WindowLayout layout = WindowLayout.LastMovedBack)
    {
        TorchRuntime.Seed(3);
        var tokenizer = new ByteLevelTokenizer();
        var config = MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = WindowTokens, Width = 32, Layers = 1 };
        return new TextClassifierModel(new SequenceClassifier(config, 3, PoolingKind.Mean, 0), tokenizer, WindowTokens, CPU, maxWindows, temperature, layout);
    }

    private static ModelArchive RoundTrip(ModelArchive archive)
    {
        using var saved = archive;
        var stream = new MemoryStream();
        archive.WriteTo(stream);
        stream.Position = 0;
        return ModelArchive.ReadFrom(stream);
    }

    private static float[] Score(TextClassifierModel model, string text) => model.LogProbabilities([(text, null)])[0];

    [Fact]
    public void A_long_rows_score_depends_on_text_beyond_the_first_window_up_to_the_bound()
    {
        using var windowed = NewModel(maxWindows: 3);
        using var headOnly = NewModel(maxWindows: 1);
        string head = "abcdefg";                                                  // exactly the first window
        Assert.NotEqual(Score(windowed, head + "the tail"), Score(windowed, head + "elsewhere"));
        Assert.Equal(Score(headOnly, head + "the tail"), Score(headOnly, head + "elsewhere"));
        string three = head + "hijklmn" + "opqrstu";                              // exactly three windows
        Assert.Equal(Score(windowed, three + "beyond"), Score(windowed, three + "the bound"));
    }

    [Fact]
    public void Short_rows_score_exactly_as_with_one_window()
    {
        using var windowed = NewModel(maxWindows: 4);
        using var headOnly = NewModel(maxWindows: 1);
        (string, string?)[] rows = [("short", null), ("abcdefg", null), ("a pair", "of texts that is long")];
        Assert.Equal(headOnly.LogProbabilities(rows), windowed.LogProbabilities(rows));
    }

    [Fact]
    public void Saved_models_keep_the_window_bound_and_temperature()
    {
        using var model = NewModel(maxWindows: 3, temperature: 2.5);
        using var loaded = TextClassifierModel.FromArchive(RoundTrip(model.ToArchive()), CPU);
        Assert.Equal(3, loaded.MaxWindowsPerRow);
        Assert.Equal(2.5, loaded.Temperature);
        string text = "a row that is much longer than one window";
        Assert.Equal(Score(model, text), Score(loaded, text));
    }

    [Fact]
    public void A_model_saved_before_windows_and_temperature_loads_with_one_window_and_scores_identically()
    {
        using var model = NewModel(maxWindows: 1);
        var archive = model.ToArchive().SetText(TextClassifierModel.HeadEntry, """{"Classes":3,"Pooling":0,"MaxTokensPerRow":8}""");
        using var loaded = TextClassifierModel.FromArchive(RoundTrip(archive), CPU);
        Assert.Equal(1, loaded.MaxWindowsPerRow);
        Assert.Equal(1, loaded.Temperature);
        Assert.Equal(WindowLayout.LastMovedBack, loaded.WindowLayout);
        (string, string?)[] rows = [("short", null), ("a row that is much longer than one window", null)];
        Assert.Equal(model.LogProbabilities(rows), loaded.LogProbabilities(rows));
    }

    [Fact]
    public void The_window_layout_is_saved_only_when_it_is_not_the_default()
    {
        using var movedBack = NewModel(maxWindows: 3);
        Assert.Equal("""{"Classes":3,"Pooling":0,"MaxTokensPerRow":8,"MaxWindowsPerRow":3,"Temperature":1,"NgramBuckets":0,"NgramLength":2}""",
            movedBack.ToArchive().GetText(TextClassifierModel.HeadEntry));               // the bytes written before the setting existed
        using var even = NewModel(maxWindows: 3, layout: WindowLayout.Even);
        Assert.Contains("\"WindowLayout\":2", even.ToArchive().GetText(TextClassifierModel.HeadEntry));
        using var loaded = TextClassifierModel.FromArchive(RoundTrip(even.ToArchive()), CPU);
        Assert.Equal((WindowLayout.Even, WindowLayout.Even), (loaded.WindowLayout, loaded.ScoringWindowLayout));
        string text = "sixteen bytes ok";                                                // 16 bytes: windows 7/7/7 moved back, 6/5/5 even
        Assert.Equal(Score(even, text), Score(loaded, text));
        Assert.NotEqual(Score(movedBack, text), Score(loaded, text));
        using var old = TextClassifierModel.FromArchive(RoundTrip(movedBack.ToArchive()), CPU);
        Assert.Equal(WindowLayout.LastMovedBack, old.WindowLayout);
        var unknown = even.ToArchive().SetText(TextClassifierModel.HeadEntry,
            """{"Classes":3,"Pooling":0,"MaxTokensPerRow":8,"MaxWindowsPerRow":3,"WindowLayout":9}""");
        Assert.Throws<InvalidDataException>(() => TextClassifierModel.FromArchive(RoundTrip(unknown), CPU));
    }

    [Fact]
    public void A_non_default_layout_asks_for_reader_version_2_and_a_newer_reader_version_is_refused_with_a_message()
    {
        using var movedBack = NewModel(maxWindows: 3);
        Assert.DoesNotContain("ReaderVersion", movedBack.ToArchive().GetText(TextClassifierModel.HeadEntry));
        using var even = NewModel(maxWindows: 3, layout: WindowLayout.Even);
        Assert.Contains("\"ReaderVersion\":2", even.ToArchive().GetText(TextClassifierModel.HeadEntry));
        var newer = even.ToArchive().SetText(TextClassifierModel.HeadEntry,
            $$"""{"Classes":3,"Pooling":0,"MaxTokensPerRow":8,"ReaderVersion":{{TextClassifierModel.SupportedReaderVersion + 1}}}""");
        var error = Assert.Throws<InvalidDataException>(() => TextClassifierModel.FromArchive(RoundTrip(newer), CPU));
        Assert.Contains("reader version 3", error.Message);
        Assert.Contains("Update Microsoft.ML.MemoryFormer", error.Message);
    }

    [Fact]
    public void The_temperature_divides_the_logits_without_changing_the_prediction()
    {
        using var plain = NewModel(maxWindows: 1);
        using var hot = NewModel(maxWindows: 1, temperature: 4);
        var p = Score(plain, "some text");
        var q = Score(hot, "some text");
        int argmax = Array.IndexOf(p, p.Max());
        Assert.Equal(argmax, Array.IndexOf(q, q.Max()));
        Assert.True(q.Max() < p.Max(), "a temperature above 1 flattens the distribution");
        var logits = p.Select(v => v - p[0]).ToArray();                          // log-softmax differences = logit differences
        for (int c = 1; c < 3; c++) Assert.Equal(logits[c] / 4, q[c] - q[0], 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => NewModel(maxWindows: 1, temperature: 0));
    }
}
