using Microsoft.ML.MemoryFormer.Configuration;

namespace Microsoft.ML.MemoryFormer.Tests.Configuration;

public class MemoryFormerConfigTests
{
    [Fact]
    public void Presets_have_the_papers_shapes()
    {
        Assert.Equal((6, 512, 64, 8), (MemoryFormerConfig.Tiny.Layers, MemoryFormerConfig.Tiny.Width, MemoryFormerConfig.Tiny.ChunkCount, MemoryFormerConfig.Tiny.BitsPerChunk));
        Assert.Equal((12, 768, 96), (MemoryFormerConfig.PaperSmall.Layers, MemoryFormerConfig.PaperSmall.Width, MemoryFormerConfig.PaperSmall.ChunkCount));
        Assert.Equal((24, 1024, 128), (MemoryFormerConfig.Base.Layers, MemoryFormerConfig.Base.Width, MemoryFormerConfig.Base.ChunkCount));
        foreach (var c in new[] { MemoryFormerConfig.Nano, MemoryFormerConfig.Small256, MemoryFormerConfig.Tiny, MemoryFormerConfig.PaperSmall, MemoryFormerConfig.Base })
            c.Validate();
    }

    [Fact]
    public void Validate_names_the_field_and_the_rule()
    {
        var e = Assert.Throws<ArgumentException>(() => (MemoryFormerConfig.Nano with { Width = 18 }).Validate());
        Assert.Equal("Width", e.ParamName);
        Assert.Contains("divisible by BitsPerChunk", e.Message);
        e = Assert.Throws<ArgumentException>(() => (MemoryFormerConfig.Nano with { Heads = 3 }).Validate());
        Assert.Equal("Heads", e.ParamName);
        e = Assert.Throws<ArgumentException>(() => (MemoryFormerConfig.Nano with { BitsPerChunk = 0 }).Validate());
        Assert.Equal("BitsPerChunk", e.ParamName);
    }

    [Fact]
    public void Json_round_trip_gives_an_equal_config()
    {
        var c = MemoryFormerConfig.Nano with { WeightFunction = HashWeightFunction.SigmoidProduct, Temperature = 0.5, QkvInitStd = 0.03, Kind = TransformerKind.Dense };
        var json = c.ToJson();
        Assert.Contains("\"SigmoidProduct\"", json);
        Assert.Equal(c, MemoryFormerConfig.FromJson(json));
    }

    [Fact]
    public void Json_with_an_invalid_value_is_rejected_on_load()
    {
        var json = MemoryFormerConfig.Nano.ToJson().Replace("\"Heads\": 2", "\"Heads\": 5", StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => MemoryFormerConfig.FromJson(json));
    }

    [Theory]
    [InlineData("\"Width\": 16", "\"Width\": 1000000", "Width")]
    [InlineData("\"Layers\": 2", "\"Layers\": 100000", "Layers")]
    [InlineData("\"VocabularySize\": 64", "\"VocabularySize\": 2000000000", "VocabularySize")]
    [InlineData("\"ContextLength\": 16", "\"ContextLength\": 2000000000", "ContextLength")]
    [InlineData("\"Kind\": \"MemoryFormer\"", "\"Kind\": 99", "Kind")]
    [InlineData("\"Norm\": \"RmsNorm\"", "\"Norm\": 7", "Norm")]
    public void Json_declaring_an_absurd_size_or_unknown_kind_is_rejected_on_load(string from, string to, string field)
    {
        var json = MemoryFormerConfig.Nano.ToJson();
        Assert.Contains(from, json, StringComparison.Ordinal);
        var e = Assert.Throws<ArgumentException>(() => MemoryFormerConfig.FromJson(json.Replace(from, to, StringComparison.Ordinal)));
        Assert.Equal(field, e.ParamName);
    }
}
