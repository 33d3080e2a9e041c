using Microsoft.ML.MemoryFormer.Generation;

namespace Microsoft.ML.MemoryFormer.Tests.Generation;

public class GenerationOptionsTests
{
    [Fact]
    public void Defaults_are_documented_values_and_valid()
    {
        var options = new GenerationOptions();

        Assert.Equal(64, options.MaxNewTokens);
        Assert.Equal(0.8, options.Temperature);
        Assert.Equal(0, options.TopK);
        Assert.Equal(1.0, options.TopP);
        Assert.Equal(1.0, options.RepetitionPenalty);
        Assert.Equal(0.0, options.FrequencyPenalty);
        Assert.Equal(0.0, options.PresencePenalty);
        Assert.Empty(options.StopSequences);
        Assert.Null(options.Seed);
        Assert.Null(Record.Exception(options.Validate));
    }

    public static TheoryData<GenerationOptions, string, string> OutOfRange => new()
    {
        { new GenerationOptions { MaxNewTokens = 0 }, nameof(GenerationOptions.MaxNewTokens), "greater than 0" },
        { new GenerationOptions { Temperature = -0.1 }, nameof(GenerationOptions.Temperature), ">= 0" },
        { new GenerationOptions { Temperature = double.NaN }, nameof(GenerationOptions.Temperature), ">= 0" },
        { new GenerationOptions { TopK = -1 }, nameof(GenerationOptions.TopK), ">= 0" },
        { new GenerationOptions { TopP = 0 }, nameof(GenerationOptions.TopP), "(0, 1]" },
        { new GenerationOptions { TopP = 1.5 }, nameof(GenerationOptions.TopP), "(0, 1]" },
        { new GenerationOptions { RepetitionPenalty = 0 }, nameof(GenerationOptions.RepetitionPenalty), "> 0" },
        { new GenerationOptions { FrequencyPenalty = double.NaN }, nameof(GenerationOptions.FrequencyPenalty), "finite" },
        { new GenerationOptions { PresencePenalty = double.PositiveInfinity }, nameof(GenerationOptions.PresencePenalty), "finite" },
    };

    [Fact]
    public void Output_penalties_are_saved_only_when_set()
    {
        string plain = System.Text.Json.JsonSerializer.Serialize(new GenerationOptions());
        Assert.DoesNotContain("PresencePenalty", plain, StringComparison.Ordinal);
        Assert.DoesNotContain("FrequencyPenalty", plain, StringComparison.Ordinal);
        var set = new GenerationOptions { FrequencyPenalty = 0.5, PresencePenalty = -0.25 };
        var read = System.Text.Json.JsonSerializer.Deserialize<GenerationOptions>(System.Text.Json.JsonSerializer.Serialize(set))!;
        Assert.Equal((0.5, -0.25), (read.FrequencyPenalty, read.PresencePenalty));
    }

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public void Validation_names_the_property_and_the_rule(GenerationOptions options, string property, string rule)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(options.Validate);

        Assert.Equal(property, error.ParamName);
        Assert.Contains(property, error.Message, StringComparison.Ordinal);
        Assert.Contains(rule, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_stop_sequence_is_rejected()
    {
        var options = new GenerationOptions { StopSequences = ["\n\n", ""] };

        var error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Equal(nameof(GenerationOptions.StopSequences), error.ParamName);
        Assert.Contains("StopSequences[1]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Greedy_and_boundary_values_are_valid()
    {
        var boundary = new GenerationOptions { Temperature = 0, TopP = 1, TopK = 0, MaxNewTokens = 1, Seed = -5 };

        Assert.Null(Record.Exception(boundary.Validate));
    }
}
