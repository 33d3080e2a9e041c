using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Labelled rows a model can be run on, any subset at a time: text rows (token ids), tabular rows (feature
/// vectors), ... <see cref="SupervisedTask"/> only needs this, so every supervised trainer shares it.
/// </summary>
internal interface ILabelledRows
{
    /// <summary>Number of rows.</summary>
    int Count { get; }

    /// <summary>Runs the model on <paramref name="rows"/>: outputs [B, C] and targets [B] (int64 classes or float values).</summary>
    (Tensor Outputs, Tensor Targets) Run(int[] rows);

    /// <summary>The example weights of <paramref name="rows"/>, float [B] on the outputs' device; null when every row counts once.</summary>
    Tensor? Weights(int[] rows) => null;
}
