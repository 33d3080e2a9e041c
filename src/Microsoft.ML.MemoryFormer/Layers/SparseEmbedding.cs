using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// The token embedding's lookup in a training step whose batch holds few of its rows: the fused gather with one row a token
/// and weight 1 (<see cref="FusedMemoryGather"/>). Its forward gives the same vectors as <c>nn.Embedding</c>; its backward
/// writes only the rows the batch holds into the embedding's reused gradient buffer and measures the gradient's norm while
/// writing it (<see cref="TableGradient"/>), where autograd's gradient of <c>nn.Embedding</c> is the whole [V, d] matrix:
/// a zero-fill of all of it every step, then a norm and a scaling pass over it in the clip. The optimizer steps only the rows
/// some batch has held and lets the others decay (<c>Training/FusedAdamW.cs</c>, <c>ActiveRows</c>), which
/// is what dense AdamW does to a row whose gradient and moments are zero.
/// </summary>
/// <remarks>Taken only while a training loop has attached the buffer, with the fused kernels on, on the CPU, and when a
/// batch's tokens number at most a quarter of the vocabulary (GPT-2's 50,257 rows against a few thousand tokens); a byte-level
/// model's 256 rows keep <c>nn.Embedding</c>. The gradient equals autograd's up to the order of each row's sum.</remarks>
internal static class SparseEmbedding
{
    /// <summary>A batch takes this lookup when it holds at most one token per this many rows of the embedding.</summary>
    private const int SparseFraction = 4;

    /// <summary>Whether a training lookup of <paramref name="tokens"/> in <paramref name="weight"/> takes this path.</summary>
    public static bool Takes(Tensor tokens, Tensor weight, TableGradient gradient) =>
        gradient.Attached && KernelSettings.Current.UseFusedKernels && KernelSettings.Current.SparseEmbeddingGradient
        && is_grad_enabled() && weight.requires_grad && tokens.device_type == DeviceType.CPU && FusedMemoryGather.IsSupported(weight)
        && tokens.numel() * SparseFraction <= weight.shape[0];

    /// <summary>Token ids [..] → their rows of <paramref name="weight"/> [V, d], shaped [.., d].</summary>
    /// <exception cref="ArgumentOutOfRangeException">A token id lies outside [0, V).</exception>
    public static Tensor Lookup(Tensor tokens, Tensor weight, TableGradient gradient)
    {
        using var scope = NewDisposeScope();
        var rows = tokens.to(ScalarType.Int64).reshape(-1, 1);                                  // [N, 1]
        var ones = torch.ones(rows.shape[0], 1, dtype: ScalarType.Float32);                    // [N, 1], weight 1 a row
        Tensor y;
        try
        {
            y = FusedMemoryGather.ApplyMany(rows, ones, [weight], [gradient])[0];               // [N, d]
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), $"A token id lies outside the vocabulary [0, {weight.shape[0]}): {e.Message}");
        }
        return y.view([.. tokens.shape, weight.shape[1]]).MoveToOuterDisposeScope();           // [.., d]
    }
}
