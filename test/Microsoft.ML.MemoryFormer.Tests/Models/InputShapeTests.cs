using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

/// <summary>Every entry from the Memory Block up to the models names the expected and actual shape of a bad input.</summary>
public class InputShapeTests
{
    [Fact]
    public void The_Memory_Block_refuses_a_narrower_input()
    {
        random.manual_seed(1);
        using var block = new MemoryBlock(MemoryFormerConfig.Nano);             // d = 16 = 4 chunks of 4 bits
        var e = Assert.Throws<ArgumentException>(() => block.call(randn(3, 12)));   // 3 whole chunks: passed the old divisibility check
        Assert.Contains("d = K·τ = 16", e.Message);
        Assert.Contains("[3, 12]", e.Message);
    }

    [Fact]
    public void A_block_refuses_embeddings_of_another_width()
    {
        random.manual_seed(1);
        using var block = new TransformerBlock(MemoryFormerConfig.Nano);
        var e = Assert.Throws<ArgumentException>(() => block.Forward(randn(1, 4, 12), new AttentionContext(Causal: true), null));
        Assert.Contains("d = 16", e.Message);
        Assert.Contains("[1, 4, 12]", e.Message);
    }

    [Fact]
    public void The_language_model_refuses_a_sequence_longer_than_its_context_or_not_2D()
    {
        random.manual_seed(1);
        using var model = new LanguageModel(MemoryFormerConfig.Nano);           // 16 positions
        var e = Assert.Throws<ArgumentException>(() => model.call(zeros([1, 17], ScalarType.Int64)));
        Assert.Contains("16 positions", e.Message);
        Assert.Contains("got 17", e.Message);
        e = Assert.Throws<ArgumentException>(() => model.call(zeros([8], ScalarType.Int64)));
        Assert.Contains("[B, T]", e.Message);
        Assert.Equal(64, model.call(zeros([1, 16], ScalarType.Int64)).shape[2]);
    }

    [Fact]
    public void The_tabular_model_refuses_another_feature_count()
    {
        random.manual_seed(1);
        using var model = new TabularModel(MemoryFormerConfig.Nano with { RotaryFraction = 0 }, featureCount: 5, outputCount: 2);
        var e = Assert.Throws<ArgumentException>(() => model.call(randn(3, 4)));
        Assert.Contains("F = 5", e.Message);
        Assert.Contains("[3, 4]", e.Message);
        Assert.Equal([3L, 2L], model.call(randn(3, 5)).shape);
    }
}
