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

    [Theory]
    [InlineData(1e-39)]   // > 0 was accepted, yet the paper's weight of a zero element is then NaN
    [InlineData(1e-5)]
    [InlineData(1e5)]
    public void A_temperature_outside_the_sane_range_is_refused(double temperature)
    {
        var e = Assert.Throws<ArgumentException>(() => (MemoryFormerConfig.Nano with { Temperature = temperature }).Validate());
        Assert.Equal("Temperature", e.ParamName);
        (MemoryFormerConfig.Nano with { Temperature = MemoryFormerConfig.MinTemperature }).Validate();
        (MemoryFormerConfig.Nano with { Temperature = MemoryFormerConfig.MaxTemperature }).Validate();
    }

    [Fact]
    public void A_LayerNorm_epsilon_is_honoured_or_refused_never_silently_raised()
    {
        // Before, a LayerNorm config with ε = 1e-8 validated and then ran with 1e-5.
        var e = Assert.Throws<ArgumentException>(() => (MemoryFormerConfig.Nano with { Norm = NormKind.LayerNorm }).Validate());
        Assert.Equal("NormEpsilon", e.ParamName);
        Assert.Contains("1E-05", e.Message.ToUpperInvariant());

        var config = MemoryFormerConfig.Nano with { Norm = NormKind.LayerNorm, NormEpsilon = 1e-3 };
        using var backbone = new Microsoft.ML.MemoryFormer.Models.TransformerBackbone(config);
        var norm = Assert.IsType<TorchSharp.Modules.LayerNorm>(backbone.FinalNorm);
        var x = TorchSharp.torch.tensor(new float[] { 0.01f, -0.01f, 0.02f, -0.02f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }).view(1, 16);
        var mean = x.mean([1L], keepdim: true);
        var variance = (x - mean).pow(2).mean([1L], keepdim: true);
        var expected = (x - mean) / (variance + 1e-3).sqrt();                // ε = 1e-3 dominates this small variance
        Assert.True(TorchSharp.torch.allclose(norm.call(x), expected, 1e-4, 1e-5), "LayerNorm did not use the configured ε");
    }

    [Fact]
    public void A_saved_LayerNorm_config_from_before_the_rule_loads_with_the_epsilon_it_ran_with()
    {
        var json = (MemoryFormerConfig.Nano with { Norm = NormKind.LayerNorm, NormEpsilon = 1e-5 }).ToJson()
            .Replace("\"NormEpsilon\": 1E-05", "\"NormEpsilon\": 1E-08", StringComparison.Ordinal);
        Assert.Contains("1E-08", json, StringComparison.Ordinal);
        Assert.Equal(MemoryFormerConfig.MinLayerNormEpsilon, MemoryFormerConfig.FromJson(json).NormEpsilon);
    }
}
