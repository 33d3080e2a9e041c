using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>Text rows already encoded as token windows, with their targets, run through a <see cref="SequenceClassifier"/>:
/// the windows of a batch's rows form one padded batch, and each row's output is the mean over its windows
/// (<see cref="SequencePooling.MeanOverWindows"/>).</summary>
/// <param name="model">The classifier.</param>
/// <param name="rows">Token windows of each row, at least one (see <see cref="TextPairEncoder.EncodeWindows"/>).</param>
/// <param name="targets">int64 [N] classes or float [N] values, on the CPU.</param>
/// <param name="padId">Id used for padding (masked out).</param>
/// <param name="device">Where the model runs.</param>
/// <param name="weights">float [N] example weights on the CPU, or null (every row counts once).</param>
internal sealed class TokenRows(SequenceClassifier model, IReadOnlyList<int[][]> rows, Tensor targets, int padId, Device device,
    Tensor? weights = null) : ILabelledRows, IDisposable
{
    public int Count => rows.Count;

    public (Tensor Outputs, Tensor Targets) Run(int[] indices)
    {
        var (tokens, mask) = PaddedBatch.Create(indices.SelectMany(i => rows[i]).ToArray(), padId, device); // [W, T]
        var picked = targets.index_select(0, tensor(indices.Select(i => (long)i).ToArray())).to(device);   // [B]
        var outputs = SequencePooling.MeanOverWindows(model.Forward(tokens, mask), indices.Select(i => rows[i].Length).ToArray());
        return (outputs, picked);                                                                        // [B, C], [B]
    }

    public Tensor? Weights(int[] indices) =>
        weights?.index_select(0, tensor(indices.Select(i => (long)i).ToArray())).to(device);                    // [B]

    public void Dispose()
    {
        targets.Dispose();
        weights?.Dispose();
    }
}
