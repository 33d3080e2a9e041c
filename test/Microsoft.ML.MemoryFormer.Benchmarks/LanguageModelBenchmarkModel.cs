using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>One model <c>bench lm --models</c> can train: the transformer kind and the MemoryFormer table options.</summary>
/// <param name="Name">The name on the command line.</param>
/// <param name="Kind">MemoryFormer or the dense baseline.</param>
/// <param name="Moments">Precision of the hash tables' AdamW moments.</param>
/// <param name="Clipping">Table gradient clipping rule; null leaves the library default (PreviousStep).</param>
/// <param name="Label">The name in the tables.</param>
internal sealed record LanguageModelBenchmarkModel(string Name, TransformerKind Kind, MomentPrecision? Moments, TableGradientClipping? Clipping, string Label)
{
    /// <summary>Every model, by command-line name. mf-prevclip sets the default rule explicitly (the same run as mf);
    /// mf-global keeps the old default measurable (issue 16, item 3).</summary>
    public static IReadOnlyList<LanguageModelBenchmarkModel> All { get; } =
    [
        new("mf", TransformerKind.MemoryFormer, null, null, "MemoryFormer"),
        new("dense", TransformerKind.Dense, MomentPrecision.Float32, null, "Dense"),
        new("mf-bf16", TransformerKind.MemoryFormer, MomentPrecision.BFloat16, null, "MemoryFormer, bf16 table moments set explicitly (= mf)"),
        new("mf-fp32", TransformerKind.MemoryFormer, MomentPrecision.Float32, null, "MemoryFormer, fp32 table moments (the default before 2026-12-05)"),
        new("mf-prevclip", TransformerKind.MemoryFormer, null, TableGradientClipping.PreviousStep, "MemoryFormer, PreviousStep clip set explicitly"),
        new("mf-global", TransformerKind.MemoryFormer, null, TableGradientClipping.Global, "MemoryFormer, Global clip (separate table update)"),
    ];

    /// <summary>
    /// The models of a comma-separated <c>--models</c> list, in its order. At equal wall-clock the list names the dense
    /// reference and one MemoryFormer variant; they come back reference first, the order they are trained in.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown or repeated name, an empty list, or (at equal time) not exactly dense plus one MemoryFormer.</exception>
    public static IReadOnlyList<LanguageModelBenchmarkModel> Parse(string list, bool equalTime)
    {
        var names = (list ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (names.Length == 0)
            throw new ArgumentException($"--models is empty; name one or more of {string.Join(", ", All.Select(m => m.Name))}.");
        var models = names.Select(name => All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"--models: unknown model '{name}'; the models are {string.Join(", ", All.Select(m => m.Name))}."))
            .ToList();
        if (models.Distinct().Count() != models.Count)
            throw new ArgumentException($"--models '{list}' names a model twice; each model is trained once.");
        if (!equalTime) return models;
        var reference = models.Where(m => m.Kind == TransformerKind.Dense).ToList();
        var candidates = models.Where(m => m.Kind == TransformerKind.MemoryFormer).ToList();
        if (reference.Count != 1 || candidates.Count != 1)
            throw new ArgumentException($"--equal-time compares two models, so --models must name dense and one MemoryFormer variant " +
                $"(e.g. mf,dense or mf-bf16,dense), not '{list}'.");
        return [reference[0], candidates[0]];
    }
}
