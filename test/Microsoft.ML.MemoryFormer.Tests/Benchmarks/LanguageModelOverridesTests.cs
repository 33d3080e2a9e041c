using Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.Benchmarks;

/// <summary>The <c>--mf-set</c> / <c>--dense-set</c> assignments of <c>bench lm-tokens</c> (linked from the benchmark program).</summary>
public class LanguageModelOverridesTests
{
    [Fact]
    public void Option_fields_and_architecture_properties_are_set_and_nothing_else_changes()
    {
        var options = new MemoryFormerLanguageModelEstimator.Options { LearningRate = 1e-3, Architecture = MemoryFormerConfig.Small256 };
        var before = options.Architecture;

        LanguageModelOverrides.Apply(options, "TableLearningRate=0.01, Architecture.BitsPerChunk=4,Architecture.WeightFunction=sigmoidproduct");

        Assert.Equal(0.01, options.TableLearningRate);
        Assert.Equal(1e-3, options.LearningRate);
        Assert.Equal(4, options.Architecture.BitsPerChunk);
        Assert.Equal(HashWeightFunction.SigmoidProduct, options.Architecture.WeightFunction);
        Assert.Equal(before with { BitsPerChunk = 4, WeightFunction = HashWeightFunction.SigmoidProduct }, options.Architecture);
        Assert.Equal(8, before.BitsPerChunk);                             // the preset itself is not modified
    }

    [Fact]
    public void Architecture_assignments_combine_with_gpt2_adaptive_cutoffs()
    {
        // the byte-level recipe's vocabulary (256) is below the cutoffs until the trainer sets the tokenizer's
        var options = new MemoryFormerLanguageModelEstimator.Options { Architecture = MemoryFormerConfig.Small256 };

        LanguageModelOverrides.Apply(options, "Architecture.Dropout=0.1,Seed=7", [2000, 10000]);

        Assert.Equal(0.1, options.Architecture.Dropout);
        Assert.Equal(new[] { 2000, 10000 }, options.Architecture.AdaptiveSoftmaxCutoffs!);
        Assert.Equal(7, options.Seed);
        Assert.Equal(256, options.Architecture.VocabularySize);
    }

    [Fact]
    public void No_assignments_leave_the_options_as_they_are()
    {
        var options = new MemoryFormerLanguageModelEstimator.Options();
        var architecture = options.Architecture;

        LanguageModelOverrides.Apply(options, " ");

        Assert.Null(options.TableLearningRate);
        Assert.Same(architecture, options.Architecture);
    }

    [Theory]
    [InlineData("NoSuchField=1")]
    [InlineData("Architecture.NoSuchProperty=1")]
    [InlineData("Architecture.ChunkCount=4")]                           // computed, not settable
    [InlineData("Architecture.BitsPerChunk")]
    public void Unknown_names_and_missing_values_throw(string assignments) =>
        Assert.Throws<ArgumentException>(() => LanguageModelOverrides.Apply(new MemoryFormerLanguageModelEstimator.Options(), assignments));

    [Fact]
    public void An_architecture_the_config_rejects_throws()
    {
        var options = new MemoryFormerLanguageModelEstimator.Options { Architecture = MemoryFormerConfig.Small256 };

        var error = Assert.Throws<ArgumentException>(() => LanguageModelOverrides.Apply(options, "Architecture.BitsPerChunk=17"));
        Assert.Contains("BitsPerChunk", error.Message);
    }
}
