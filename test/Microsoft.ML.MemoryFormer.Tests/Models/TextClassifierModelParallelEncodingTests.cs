using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Tests.Text;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

/// <summary><see cref="TextClassifierModel.EncodeAll"/> on two workers, each with its own tokenizer, gives every row the ids of
/// <see cref="TextClassifierModel.Encode"/> on one thread.</summary>
public class TextClassifierModelParallelEncodingTests
{
    private static TextClassifierModel NewModel(ITextTokenizer tokenizer, WindowLayout layout)
    {
        TorchRuntime.Seed(5);
        var config = MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = 32, Width = 32, Layers = 1 };
        return new TextClassifierModel(new SequenceClassifier(config, 3, PoolingKind.Mean, 0), tokenizer, 32, CPU, maxWindowsPerRow: 4, windowLayout: layout);
    }

    private static (string, string?)[] Rows()
    {
        var random = new Random(7);
        string[] words = ["the", " whale", ",", " Ishmael", " sea", "\n", " 1851", " call", " me", "!", "   ", " naïve", " 😀", " <|endoftext|>"];
        var rows = new List<(string, string?)> { ("", null), (SampleTexts.Mixed, null), ("a question", "an answer"), (SampleTexts.Mixed, SampleTexts.Mixed) };
        for (int n = 0; n < 300; n += 3)
            rows.Add((string.Concat(Enumerable.Range(0, n).Select(_ => words[random.Next(words.Length)])), n % 9 == 0 ? "second" : null));
        return [.. rows];
    }

    [Theory]
    [InlineData(WindowLayout.Even, false)]
    [InlineData(WindowLayout.LastMovedBack, false)]
    [InlineData(WindowLayout.Even, true)]
    public void Rows_tokenized_on_two_workers_get_the_ids_of_one_thread(WindowLayout layout, bool byteLevel)
    {
        int threads = torch.get_num_threads();
        torch.set_num_threads(2);
        try
        {
            using var model = NewModel(byteLevel ? new ByteLevelTokenizer() : new Gpt2Tokenizer(), layout);
            var rows = Rows();
            Assert.True(model.ParallelEncoding);
            var serial = rows.Select(r => model.Encode(r.Item1, r.Item2)).ToArray();
            for (int pass = 0; pass < 3; pass++)                                  // the copies' caches cold, then warm
            {
                var parallel = model.EncodeAll(rows);
                Assert.Equal(serial.Length, parallel.Length);
                for (int i = 0; i < serial.Length; i++)
                    Assert.Equal(serial[i], parallel[i]);
            }
            Assert.Contains(serial, w => w.Length > 1);                              // long rows cut into windows too
        }
        finally
        {
            torch.set_num_threads(threads);
        }
    }

    [Fact]
    public void A_GPT2_copy_has_its_own_tokenizer_and_the_same_ids()
    {
        var gpt2 = new Gpt2Tokenizer();
        var copy = Assert.IsType<Gpt2Tokenizer>(TokenizerCopies.Independent(gpt2));
        Assert.NotSame(gpt2, copy);
        foreach (var text in new[] { SampleTexts.Mixed, "Call me Ishmael. <|endoftext|> Some years ago", "" })
            Assert.Equal(gpt2.Encode(text), copy.Encode(text));
        var byteLevel = new ByteLevelTokenizer();
        Assert.Same(byteLevel, TokenizerCopies.Independent(byteLevel));               // no state to share
    }
}
