using Microsoft.ML.MemoryFormer.Benchmarks;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Tests.Benchmarks;

/// <summary>The <c>--models</c> list of <c>bench lm</c> (linked from the benchmark program).</summary>
public class LanguageModelBenchmarkModelTests
{
    [Fact]
    public void At_equal_steps_the_models_come_back_in_the_order_given_whatever_the_case()
    {
        var models = LanguageModelBenchmarkModel.Parse(" Dense, MF ,mf-global", equalTime: false);

        Assert.Equal(["dense", "mf", "mf-global"], models.Select(m => m.Name));
        Assert.Equal(TransformerKind.Dense, models[0].Kind);
        Assert.Equal(TableGradientClipping.Global, models[2].Clipping);
    }

    [Theory]
    [InlineData("mf,dense", "mf")]
    [InlineData("dense,mf-bf16", "mf-bf16")]
    public void At_equal_time_the_dense_reference_comes_first(string list, string candidate)
    {
        var models = LanguageModelBenchmarkModel.Parse(list, equalTime: true);

        Assert.Equal(["dense", candidate], models.Select(m => m.Name));
        Assert.Equal(MomentPrecision.BFloat16 == models[1].Moments, candidate == "mf-bf16");
    }

    [Fact]
    public void An_unknown_model_is_named_with_the_known_ones()
    {
        var error = Assert.Throws<ArgumentException>(() => LanguageModelBenchmarkModel.Parse("mf,desne", equalTime: false));

        Assert.Contains("'desne'", error.Message, StringComparison.Ordinal);
        Assert.Contains("mf, dense, mf-bf16, mf-fp32, mf-prevclip, mf-global", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("mf")]
    [InlineData("dense")]
    [InlineData("mf,mf-bf16,dense")]
    [InlineData("mf,mf-global")]
    public void Equal_time_needs_dense_and_exactly_one_memoryformer(string list)
    {
        var error = Assert.Throws<ArgumentException>(() => LanguageModelBenchmarkModel.Parse(list, equalTime: true));

        Assert.Contains("--equal-time", error.Message, StringComparison.Ordinal);
        Assert.Contains($"'{list}'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" , ")]
    [InlineData("mf,MF")]
    public void An_empty_or_repeated_list_is_refused(string list)
    {
        var error = Assert.Throws<ArgumentException>(() => LanguageModelBenchmarkModel.Parse(list, equalTime: false));

        Assert.Contains("--models", error.Message, StringComparison.Ordinal);
    }
}
