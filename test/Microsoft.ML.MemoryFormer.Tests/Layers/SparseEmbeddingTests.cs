using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers;

/// <summary>The token embedding's sparse training lookup against <c>nn.Embedding</c> and its dense autograd gradient.</summary>
public class SparseEmbeddingTests
{
    private static Tensor Tokens(long vocabulary, long[] shape, int seed) =>
        randint(0, vocabulary, shape, dtype: ScalarType.Int64, generator: new Generator((ulong)seed));

    [Fact]
    public void The_lookup_gives_nn_Embeddings_vectors_and_its_gradient_in_the_batchs_rows_only()
    {
        random.manual_seed(3);
        using var embedding = nn.Embedding(400, 24);
        var weight = embedding.weight!;
        using var gradient = new TableGradient { Attached = true };
        foreach (int seed in new[] { 1, 2, 3 })                                  // each batch clears the rows of the one before
        {
            var tokens = Tokens(400, [4, 20], seed);                            // 80 tokens: at most a quarter of 400 rows
            Assert.True(SparseEmbedding.Takes(tokens, weight, gradient));
            var upstream = randn(4, 20, 24);

            weight.grad = null;
            var y = SparseEmbedding.Lookup(tokens, weight, gradient);           // [4, 20, 24]
            Assert.Equal(new long[] { 4, 20, 24 }, y.shape);
            Assert.True(y.bytes.SequenceEqual(embedding.call(tokens).bytes));                  // the same vectors, bit for bit
            (y * upstream).sum().backward();
            var sparse = weight.grad!.clone();
            Assert.True(gradient.TryTakeSquaredNorm(weight, out double squared));
            var held = tokens.flatten().unique().Item1.data<long>().Select(r => (int)r).Order().ToArray();
            Assert.Equal(held, gradient.NonZeroRows!.Order().ToArray());

            weight.grad = null;
            (embedding.call(tokens) * upstream).sum().backward();               // autograd's dense gradient
            var dense = weight.grad!.clone();
            Assert.True(allclose(sparse, dense, 1e-5, 1e-6));
            Assert.Equal(dense.square().sum().item<float>(), squared, 3);
        }
    }

    [Fact]
    public void Large_batches_small_vocabularies_inference_and_unattached_buffers_keep_nn_Embedding()
    {
        using var embedding = nn.Embedding(400, 8);
        var weight = embedding.weight!;
        using var gradient = new TableGradient { Attached = true };
        Assert.False(SparseEmbedding.Takes(Tokens(400, [2, 51], 1), weight, gradient));     // 102 tokens > 400 / 4
        Assert.True(SparseEmbedding.Takes(Tokens(400, [2, 50], 1), weight, gradient));
        using (no_grad())
            Assert.False(SparseEmbedding.Takes(Tokens(400, [2, 50], 1), weight, gradient));
        KernelSettings.Current.With(k => k.SparseEmbeddingGradient = false,
            () => Assert.False(SparseEmbedding.Takes(Tokens(400, [2, 50], 1), weight, gradient)));
        gradient.Attached = false;
        Assert.False(SparseEmbedding.Takes(Tokens(400, [2, 50], 1), weight, gradient));
    }

    [Fact]
    public void A_token_outside_the_vocabulary_is_refused_naming_the_vocabulary()
    {
        using var embedding = nn.Embedding(400, 8);
        using var gradient = new TableGradient { Attached = true };
        var tokens = tensor(new long[] { 3, 400, 5 }).view(1, 3);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SparseEmbedding.Lookup(tokens, embedding.weight!, gradient));
        Assert.Contains("outside the vocabulary [0, 400)", e.Message, StringComparison.Ordinal);
        Assert.Contains("400", e.Message, StringComparison.Ordinal);
    }
}
