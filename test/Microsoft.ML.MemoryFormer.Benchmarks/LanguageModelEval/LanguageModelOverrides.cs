using System.Globalization;
using System.Reflection;
using Microsoft.ML.MemoryFormer.Benchmarks.Classification;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>
/// The <c>--mf-set</c> / <c>--dense-set</c> of <c>bench lm-tokens</c>: "Name=value,..." where a plain name is a public
/// field of <see cref="MemoryFormerLanguageModelEstimator.Options"/> (e.g. <c>TableLearningRate=0.01</c>) and
/// <c>Architecture.Name</c> a property of its <see cref="MemoryFormerConfig"/> (e.g. <c>Architecture.BitsPerChunk=4</c>).
/// </summary>
internal static class LanguageModelOverrides
{
    private const string ArchitecturePrefix = "Architecture.";

    /// <summary>Returns <paramref name="options"/> with the assignments applied; an unknown name or bad value throws.</summary>
    public static MemoryFormerLanguageModelEstimator.Options Apply(MemoryFormerLanguageModelEstimator.Options options, string? assignments)
    {
        if (string.IsNullOrWhiteSpace(assignments)) return options;
        var parts = assignments.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var architecture = parts.Where(p => p.StartsWith(ArchitecturePrefix, StringComparison.Ordinal)).ToArray();
        OptionOverrides.Apply(options, string.Join(',', parts.Except(architecture)));
        if (architecture.Length > 0)
            options.Architecture = WithProperties(options.Architecture, architecture.Select(a => a[ArchitecturePrefix.Length..]));
        return options;
    }

    /// <summary>
    /// <see cref="Apply(MemoryFormerLanguageModelEstimator.Options, string?)"/>, then the adaptive head's cutoffs (null = the
    /// full head). The cutoffs come last: <c>Architecture.*</c> assignments validate the config, whose vocabulary is still
    /// the recipe's 256 bytes (the trainer sets the tokenizer's later), and GPT-2 cutoffs such as 2000 exceed it.
    /// </summary>
    public static MemoryFormerLanguageModelEstimator.Options Apply(MemoryFormerLanguageModelEstimator.Options options, string? assignments, int[]? adaptiveCutoffs)
    {
        Apply(options, assignments);
        options.Architecture = options.Architecture with { AdaptiveSoftmaxCutoffs = adaptiveCutoffs };
        return options;
    }

    /// <summary>A copy of <paramref name="config"/> with the named init properties set ("Name=value" each).</summary>
    private static MemoryFormerConfig WithProperties(MemoryFormerConfig config, IEnumerable<string> assignments)
    {
        var copy = config with { };
        foreach (var assignment in assignments)
        {
            var pair = assignment.Split('=', 2, StringSplitOptions.TrimEntries);
            var property = typeof(MemoryFormerConfig).GetProperty(pair[0], BindingFlags.Public | BindingFlags.Instance);
            if (property is not { CanWrite: true }) throw new ArgumentException($"--set: MemoryFormerConfig has no settable property '{pair[0]}'.");
            if (pair.Length != 2) throw new ArgumentException($"--set: write 'Architecture.{pair[0]}=value'.");
            var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            property.SetValue(copy, type.IsEnum ? Enum.Parse(type, pair[1], ignoreCase: true) : Convert.ChangeType(pair[1], type, CultureInfo.InvariantCulture));
        }
        return copy.Validate();
    }
}
