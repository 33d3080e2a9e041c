using Microsoft.ML.MemoryFormer.Layers;
using TorchSharp;
using TorchSharp.Modules;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// Splits a model's parameters the way the optimiser treats them: Memory Layer tables (their own learning rate, this
/// library's choice; docs/model-spec.md, "Training"), other matrices (weight decay) and vectors — biases, norm gains —
/// (no decay), following the official code's rule that only biases and norm parameters are excluded from decay.
/// </summary>
internal sealed record ParameterGroups(IReadOnlyList<Parameter> Tables, IReadOnlyList<Parameter> Matrices,
    IReadOnlyList<Parameter> Vectors)
{
    /// <remarks>Tables are found by parameter name (<c>{layer}.table.weight</c>), not by <c>Handle</c>: a native
    /// module's <c>weight</c> getter returns a new wrapper with a new handle each time, so handles never match and the
    /// tables used to land in <see cref="Matrices"/> as well, i.e. they were stepped by two optimizers.</remarks>
    public static ParameterGroups Of(torch.nn.Module model)
    {
        var named = model.named_parameters().ToList();
        var byName = named.ToDictionary(p => p.name, p => p.parameter);
        var tableNames = model.named_modules().Where(m => m.module is MemoryLayer)
            .Select(m => m.name.Length == 0 ? "table.weight" : m.name + ".table.weight").ToList();
        var tables = tableNames.Select(n => byName[n]).ToList();
        var isTable = tableNames.ToHashSet();
        var rest = named.Where(p => !isTable.Contains(p.name)).Select(p => p.parameter).ToList();
        return new ParameterGroups(tables, rest.Where(p => p.dim() >= 2).ToList(), rest.Where(p => p.dim() < 2).ToList());
    }

    /// <summary>The Memory Layers in the order of <see cref="Tables"/>.</summary>
    public static IReadOnlyList<MemoryLayer> TableLayers(torch.nn.Module model) =>
        model.named_modules().Select(m => m.module).OfType<MemoryLayer>().ToList();

    /// <summary>Parameter count of each group.</summary>
    public (long Tables, long Matrices, long Vectors) Counts =>
        (Tables.Sum(p => p.numel()), Matrices.Sum(p => p.numel()), Vectors.Sum(p => p.numel()));
}
