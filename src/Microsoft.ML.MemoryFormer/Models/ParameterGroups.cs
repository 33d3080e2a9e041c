using Microsoft.ML.MemoryFormer.Layers;
using TorchSharp;
using TorchSharp.Modules;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// Splits a model's parameters the way the optimiser treats them: Memory Layer tables (their own learning rate,
/// the paper's 3×; spec §4.1), other matrices (weight decay) and vectors — biases, norm gains — (no decay),
/// following the code's rule that only biases and norm parameters are excluded from decay (spec §2.6).
/// </summary>
internal sealed record ParameterGroups(IReadOnlyList<Parameter> Tables, IReadOnlyList<Parameter> Matrices,
    IReadOnlyList<Parameter> Vectors)
{
    public static ParameterGroups Of(torch.nn.Module model)
    {
        var tables = model.modules().OfType<MemoryLayer>().Select(m => m.Table).ToList();
        var tableHandles = tables.Select(t => t.Handle).ToHashSet();
        var rest = model.parameters().Where(p => !tableHandles.Contains(p.Handle)).ToList();
        return new ParameterGroups(tables, rest.Where(p => p.dim() >= 2).ToList(), rest.Where(p => p.dim() < 2).ToList());
    }

    /// <summary>Parameter count of each group.</summary>
    public (long Tables, long Matrices, long Vectors) Counts =>
        (Tables.Sum(p => p.numel()), Matrices.Sum(p => p.numel()), Vectors.Sum(p => p.numel()));
}
