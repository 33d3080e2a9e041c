using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The tabular tokenizer's per-slot projection at inference, features [B, F, T] · projection [F, T, d] → [B, F, d] (what
/// <c>einsum("bft,ftd->bfd")</c> computes for the piecewise-linear and periodic embeddings), each (row, slot) from its own T
/// values in a fixed order. libtorch's batched GEMM rounds by batch shape, so a row scored alone (a PredictionEngine) could get
/// other bits than in a batch; here it cannot.
/// </summary>
internal static class SlotProjection
{
    /// <summary>True when <see cref="Apply"/> serves these tensors: inference (no gradients) over CPU fp32 tensors.</summary>
    public static bool Serves(Tensor features, Tensor projection) =>
        TorchRuntime.UseFusedKernels && !is_grad_enabled() && features.dim() == 3 && projection.dim() == 3
        && TensorMemory.IsCpuFloat32(features) && TensorMemory.IsCpuFloat32(projection) && projection.is_contiguous();

    /// <summary>features [B, F, T], projection [F, T, d] → y [B, F, d], y[b, f] = Σ_t features[b, f, t] · projection[f, t]
    /// accumulated with fused multiply-adds, t ascending, from zero (terms with a zero feature skipped: they add nothing).</summary>
    public static unsafe Tensor Apply(Tensor features, Tensor projection)
    {
        using var scope = NewDisposeScope();
        var x = features.contiguous();
        int rows = (int)x.shape[0], slots = (int)x.shape[1], terms = (int)x.shape[2], d = (int)projection.shape[2];
        var y = zeros(rows, slots, d);
        nint xp = (nint)TensorMemory.Floats(x), pp = (nint)TensorMemory.Floats(projection), yp = (nint)TensorMemory.Floats(y);
        KernelParallel.For(rows, (long)slots * terms * d, (first, end) =>
        {
            for (long s = (long)first * slots; s < (long)end * slots; s++)
            {
                float* e = (float*)xp + (s * terms), dst = (float*)yp + (s * d), p = (float*)pp + (s % slots * terms * d);
                for (int t = 0; t < terms; t++)
                    if (e[t] != 0f)
                        MultiplyAdd(e[t], p + ((long)t * d), dst, d);
            }
        });
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>y += a · x over n floats, every element one fused multiply-add.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void MultiplyAdd(float a, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var av = Vector256.Create(a);
            for (; i + 8 <= n; i += 8)
                Vector256.FusedMultiplyAdd(av, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
        }
        for (; i < n; i++)
            y[i] = MathF.FusedMultiplyAdd(a, x[i], y[i]);
    }
}
