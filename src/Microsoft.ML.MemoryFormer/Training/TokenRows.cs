using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>Text rows already encoded as token ids, with their targets, run through a <see cref="SequenceClassifier"/>.</summary>
/// <param name="model">The classifier.</param>
/// <param name="rows">Token ids of each row (see <see cref="TextPairEncoder"/>).</param>
/// <param name="targets">int64 [N] classes or float [N] values, on the CPU.</param>
/// <param name="padId">Id used for padding (masked out).</param>
/// <param name="device">Where the model runs.</param>
internal sealed class TokenRows(SequenceClassifier model, IReadOnlyList<int[]> rows, Tensor targets, int padId, Device device)
    : ILabelledRows, IDisposable
{
    public int Count => rows.Count;

    public (Tensor Outputs, Tensor Targets) Run(int[] indices)
    {
        var (tokens, mask) = PaddedBatch.Create(indices.Select(i => rows[i]).ToArray(), padId, device); // [B, T]
        var picked = targets.index_select(0, tensor(indices.Select(i => (long)i).ToArray())).to(device); // [B]
        return (model.Forward(tokens, mask), picked);                                                  // [B, C], [B]
    }

    public void Dispose() => targets.Dispose();
}
