using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

/// <summary>The text classifier's wide branch: hashing, pooling, its effect on the outputs, and persistence.</summary>
public class HashedNgramBagTests
{
    private const int Buckets = 1000;

    private static long Bigram(long a, long b) => ((a * 1000003 + b + 1) % 2147483647) % Buckets;

    private static void FillTable(HashedNgramBag bag)
    {
        using var noGrad = no_grad();
        bag.Table.copy_(arange(bag.Table.numel(), dtype: ScalarType.Float32).view(bag.Table.shape).sin());
    }

    [Fact]
    public void The_bag_is_the_mean_of_the_unigram_and_bigram_rows_of_the_real_tokens()
    {
        using var bag = new HashedNgramBag(Buckets, ngramLength: 2, width: 4);
        FillTable(bag);
        using var padded = bag.Forward(tensor(new long[] { 5, 1007, 9, 0, 0 }, [1, 5]), tensor(new[] { true, true, true, false, false }, [1, 5]));
        using var unpadded = bag.Forward(tensor(new long[] { 5, 1007, 9 }, [1, 3]), null);
        long[] rows = [5, 1007 % Buckets, 9, Bigram(5, 1007), Bigram(1007, 9)];
        using var expected = bag.Table.detach().index_select(0, tensor(rows)).mean([0]);
        Assert.True(padded[0].allclose(expected, rtol: 1e-5, atol: 1e-6), "padding is left out of the mean");
        Assert.True(unpadded[0].allclose(expected, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void Unigrams_only_ignore_token_order_and_bigrams_do_not()
    {
        using var unigrams = new HashedNgramBag(Buckets, ngramLength: 1, width: 4);
        using var bigrams = new HashedNgramBag(Buckets, ngramLength: 2, width: 4);
        FillTable(unigrams);
        FillTable(bigrams);
        using var forward = tensor(new long[] { 11, 12, 13 }, [1, 3]);
        using var backward = tensor(new long[] { 13, 12, 11 }, [1, 3]);
        Assert.True(unigrams.Forward(forward, null).allclose(unigrams.Forward(backward, null)));
        Assert.False(bigrams.Forward(forward, null).allclose(bigrams.Forward(backward, null)));
    }

    private static TextClassifierModel NewModel(int ngramBuckets)
    {
        TorchRuntime.Seed(3);
        var tokenizer = new ByteLevelTokenizer();
        var config = MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = 16, Width = 32, Layers = 1 };
        return new TextClassifierModel(new SequenceClassifier(config, 3, PoolingKind.Mean, 0, ngramBuckets, ngramLength: 2), tokenizer, 16, CPU);
    }

    [Fact]
    public void A_zero_table_leaves_the_outputs_unchanged_and_a_trained_one_changes_them()
    {
        using var plain = NewModel(ngramBuckets: 0);
        using var wide = NewModel(ngramBuckets: Buckets);
        Assert.Null(plain.Network.NgramBag);
        (string, string?)[] rows = [("some text", null), ("other words here", null)];
        Assert.Equal(plain.LogProbabilities(rows), wide.LogProbabilities(rows));
        FillTable(wide.Network.NgramBag!);
        Assert.NotEqual(plain.LogProbabilities(rows), wide.LogProbabilities(rows));
    }

    [Fact]
    public void The_branch_is_saved_and_loaded_with_the_model()
    {
        using var model = NewModel(ngramBuckets: Buckets);
        FillTable(model.Network.NgramBag!);
        var stream = new MemoryStream();
        using (var archive = model.ToArchive()) archive.WriteTo(stream);
        stream.Position = 0;
        using var loaded = TextClassifierModel.FromArchive(ModelArchive.ReadFrom(stream), CPU);
        Assert.Equal(Buckets, loaded.Network.NgramBag!.Buckets);
        Assert.Equal(2, loaded.Network.NgramBag.NgramLength);
        (string, string?)[] rows = [("some text", null), ("a row longer than one window of sixteen bytes", null)];
        Assert.Equal(model.LogProbabilities(rows), loaded.LogProbabilities(rows));
    }

    [Fact]
    public void Bad_bag_settings_in_a_saved_model_are_rejected()
    {
        using var model = NewModel(ngramBuckets: Buckets);
        var archive = model.ToArchive().SetText(TextClassifierModel.HeadEntry,
            """{"Classes":3,"Pooling":0,"MaxTokensPerRow":16,"NgramBuckets":1000,"NgramLength":7}""");
        var error = Assert.ThrowsAny<Exception>(() => TextClassifierModel.FromArchive(archive, CPU));
        Assert.Contains("NgramLength", error.ToString());
    }
}
