using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// Rotary position embedding (GPT-NeoX style, rotate-half) on the first <c>rotaryDims</c> of each head,
/// 25% of the head in the official code (docs/model-spec.md, "Attention and rotary"). Rotary scores depend only on relative positions, so a batch may be
/// left-padded without shifting positions.
/// </summary>
internal sealed class RotaryEmbedding : nn.Module
{
    private readonly Tensor cos;   // [P, r]
    private readonly Tensor sin;   // [P, r]
    private readonly int rotaryDims;

    public RotaryEmbedding(int rotaryDims, int maxPositions, double @base) : base(nameof(RotaryEmbedding))
    {
        this.rotaryDims = rotaryDims;
        var half = Math.Max(rotaryDims / 2, 1);
        // Named scalars, disposed here: an implicit one could be finalized while the op reads it (Runtime/LiveScalars.cs).
        using Scalar zero = 0, halfEnd = half, two = 2.0, dims = Math.Max(rotaryDims, 1), positions = maxPositions;
        var inverse = pow(tensor(@base), -arange(zero, halfEnd, LiveScalars.OneInteger, dtype: ScalarType.Float64).mul(two).div(dims)); // [r/2]
        var angles = outer(arange(zero, positions, LiveScalars.OneInteger, dtype: ScalarType.Float64), inverse);                             // [P, r/2]
        var both = cat([angles, angles], -1).to(ScalarType.Float32);                                          // [P, r]
        cos = both.cos().DetachFromDisposeScope();                              // owned by the module, not by a caller's scope
        sin = both.sin().DetachFromDisposeScope();
        register_buffer("cos", cos, persistent: false);
        register_buffer("sin", sin, persistent: false);
    }

    /// <summary>cos and sin [P, r] of every position (rotate-half layout: angles repeated over both halves).</summary>
    internal (Tensor Cos, Tensor Sin) Tables => (cos, sin);

    /// <summary>r, the rotated dimensions at the start of each head.</summary>
    internal int RotaryDims => rotaryDims;

    /// <summary>Q or K as the projections give them, x [B, T, H·hd], split into heads and rotated at positions
    /// offset … offset+T−1 → [B, H, T, hd]. On the CPU in fp32 (with <see cref="Runtime.KernelSettings.UseFusedKernels"/>)
    /// one managed pass each way (<see cref="Kernels.FusedRotary"/>); elsewhere the split view and <see cref="Apply"/>.</summary>
    public Tensor SplitAndApply(Tensor x, int heads, long offset)
    {
        if (Runtime.KernelSettings.Current.UseFusedKernels && Runtime.KernelSettings.Current.FusedNormAndRotary && Kernels.FusedRotary.IsSupported(x, cos, rotaryDims))
            return Kernels.FusedRotary.Apply(x, heads, rotaryDims, cos, sin, offset);           // [B, H, T, hd]
        return Apply(x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2), offset);        // [B, H, T, hd]
    }

    /// <summary>x [B, H, T, hd] at positions offset … offset+T−1 → same shape.</summary>
    public Tensor Apply(Tensor x, long offset)
    {
        if (rotaryDims == 0) return x;
        long t = x.shape[2];
        var c = cos.narrow(0, offset, t).to(x.dtype);                           // [T, r]
        var s = sin.narrow(0, offset, t).to(x.dtype);                           // [T, r]
        var rot = x.narrow(-1, 0, rotaryDims);                                   // [B, H, T, r]
        var pass = x.narrow(-1, rotaryDims, x.shape[^1] - rotaryDims);           // [B, H, T, hd−r]
        var x1 = rot.narrow(-1, 0, rotaryDims / 2);
        var x2 = rot.narrow(-1, rotaryDims / 2, rotaryDims / 2);
        var rotated = cat([-x2, x1], -1);                                        // rotate-half
        return cat([Runtime.LiveScalars.Add(rot * c, rotated * s), pass], -1);                           // [B, H, T, hd]
    }
}
