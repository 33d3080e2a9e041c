using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

/// <summary>A call's rows tokenized on several threads (<see cref="TextClassifierModel.TokenizeInParallel"/>) give the ids of
/// the rows tokenized one by one.</summary>
public class TextClassifierModelTokenizingTests
{
    private static TextClassifierModel NewModel(ITextTokenizer tokenizer)
    {
        TorchRuntime.Seed(5);
        var config = MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = 16, Width = 32, Layers = 1 };
        return new TextClassifierModel(new SequenceClassifier(config, 2, PoolingKind.Mean, 0), tokenizer, 16, CPU, maxWindowsPerRow: 4)
            { ScoringWindowLayout = WindowLayout.Even };
    }

    private static (string, string?)[] Rows()
    {
        var random = new Random(11);
        string[] words = ["whale", " the", "Ahab's", " 1851,", " ship", "—", " naïve", " 日本語", "  ", "\n", " can't", " I'll", "!?", " 42"];
        return Enumerable.Range(0, 200).Select(i => (string.Concat(Enumerable.Range(0, random.Next(0, 90)).Select(_ => words[random.Next(words.Length)])),
            i % 9 == 4 ? "a second text" : (string?)null)).ToArray();
    }

    public static TheoryData<string> Tokenizers() => new() { "gpt2", "bytes" };

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void Rows_tokenized_together_give_the_ids_of_each_row_alone(string kind)
    {
        using var model = NewModel(kind == "gpt2" ? new Gpt2Tokenizer() : new ByteLevelTokenizer());
        var rows = Rows();
        if (KernelParallel.Workers > 1) Assert.True(model.TokenizesInParallel(rows));
        var together = model.EncodeRows(rows);
        Assert.Equal(rows.Length, together.Length);
        for (int i = 0; i < rows.Length; i++)
            Assert.Equal(model.Encode(rows[i].Item1, rows[i].Item2), together[i]);
        Assert.Contains(together, r => r.Length > 1);                            // some rows span several windows
    }

    [Fact]
    public void Small_calls_and_the_switch_off_tokenize_on_the_calling_thread()
    {
        using var model = NewModel(new ByteLevelTokenizer());
        Assert.False(model.TokenizesInParallel([("short", null), ("rows", null)]));
        model.TokenizeInParallel = false;
        Assert.False(model.TokenizesInParallel(Rows()));
        Assert.Equal(Rows().Select(r => model.Encode(r.Item1, r.Item2)), model.EncodeRows(Rows()));
    }
}
