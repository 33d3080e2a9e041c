using Microsoft.ML.MemoryFormer.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>Standardised feature rows with their targets, run through a <see cref="TabularModel"/> for <see cref="SupervisedTask"/>.</summary>
/// <param name="model">The tabular model.</param>
/// <param name="features">float [N, F] on the CPU (NaN = missing).</param>
/// <param name="targets">int64 [N] classes or float [N] standardised values, on the CPU.</param>
/// <param name="device">Where the model runs.</param>
/// <param name="weights">float [N] example weights on the CPU, or null (every row counts once).</param>
internal sealed class FeatureRows(TabularModel model, Tensor features, Tensor targets, Device device, Tensor? weights = null) : ILabelledRows, IDisposable
{
    public int Count => (int)features.shape[0];

    public (Tensor Outputs, Tensor Targets) Run(int[] rows)
    {
        var index = tensor(rows.Select(i => (long)i).ToArray());
        var x = features.index_select(0, index).to(device);                      // [B, F]
        return (model.call(x), targets.index_select(0, index).to(device));       // [B, C], [B]
    }

    public Tensor? Weights(int[] rows) =>
        weights?.index_select(0, tensor(rows.Select(i => (long)i).ToArray())).to(device);   // [B]

    public void Dispose()
    {
        features.Dispose();
        targets.Dispose();
        weights?.Dispose();
    }
}
