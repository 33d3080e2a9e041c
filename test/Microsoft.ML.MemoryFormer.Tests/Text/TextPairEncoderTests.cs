using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Text;

public class TextPairEncoderTests
{
    private const int Eot = ByteLevelTokenizer.EndOfText;

    [Fact]
    public void A_text_starts_with_end_of_text_and_keeps_its_first_tokens()
    {
        var encoder = new TextPairEncoder(new ByteLevelTokenizer(), maxTokens: 4);
        Assert.Equal([Eot, 'a', 'b', 'c'], encoder.Encode("abcdef"));
        Assert.Equal([Eot], encoder.Encode(""));
    }

    [Fact]
    public void A_pair_is_joined_by_a_separator_and_the_longer_text_is_cut_first()
    {
        var encoder = new TextPairEncoder(new ByteLevelTokenizer(), maxTokens: 7);
        Assert.Equal([Eot, 'a', 'b', 'c', Eot, 'x', 'y'], encoder.Encode("abcdefgh", "xy"));
        Assert.Equal([Eot, 'a', 'b', Eot, 'x', 'y', 'z'], encoder.Encode("abcd", "xyzw"));
    }

    [Fact]
    public void Pooling_ignores_padded_positions()
    {
        var hidden = tensor(new float[] { 1, 2, 3, 10, 20, 99 }, [2, 3, 1]);         // [B=2, T=3, d=1]
        var mask = tensor(new[] { true, true, true, true, true, false }, [2, 3]);    // row 2 has 2 real tokens
        Assert.Equal(new float[] { 2, 15 }, SequencePooling.Pool(hidden, mask, PoolingKind.Mean).data<float>().ToArray());
        Assert.Equal(new float[] { 3, 20 }, SequencePooling.Pool(hidden, mask, PoolingKind.Last).data<float>().ToArray());
        Assert.Equal(new float[] { 1, 10 }, SequencePooling.Pool(hidden, mask, PoolingKind.First).data<float>().ToArray());
    }
}
