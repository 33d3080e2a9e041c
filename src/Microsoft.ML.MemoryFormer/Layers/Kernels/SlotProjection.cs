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
    /// accumulated with fused multiply-adds, t ascending, from zero.</summary>
    public static unsafe Tensor Apply(Tensor features, Tensor projection)
    {
        using var scope = NewDisposeScope();
        var x = features.contiguous();
        int rows = (int)x.shape[0], slots = (int)x.shape[1], terms = (int)x.shape[2], d = (int)projection.shape[2];
        var y = empty(rows, slots, d);
        nint xp = (nint)TensorMemory.Floats(x), pp = (nint)TensorMemory.Floats(projection), yp = (nint)TensorMemory.Floats(y);
        KernelParallel.For(rows, (long)slots * terms * d, (first, end) =>
        {
            for (long s = (long)first * slots; s < (long)end * slots; s++)
                Token((float*)xp + (s * terms), (float*)pp + (s % slots * terms * d), terms, d, (float*)yp + (s * d));
        });
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>One (row, slot): y [d] = Σ_t e[t] · p[t] [d], each element a chain of fused multiply-adds over t from zero,
    /// 32 columns at a time in registers (the chain, and so the bits, of one element at a time).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Token(float* e, float* p, int terms, int d, float* y)
    {
        int c = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; c + 32 <= d; c += 32)
            {
                Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
                for (int t = 0; t < terms; t++)
                {
                    var et = Vector256.Create(e[t]);
                    float* row = p + ((long)t * d) + c;
                    a0 = Vector256.FusedMultiplyAdd(et, Vector256.Load(row), a0);
                    a1 = Vector256.FusedMultiplyAdd(et, Vector256.Load(row + 8), a1);
                    a2 = Vector256.FusedMultiplyAdd(et, Vector256.Load(row + 16), a2);
                    a3 = Vector256.FusedMultiplyAdd(et, Vector256.Load(row + 24), a3);
                }
                a0.Store(y + c);
                a1.Store(y + c + 8);
                a2.Store(y + c + 16);
                a3.Store(y + c + 24);
            }
        }
        for (; c < d; c++)
        {
            float a = 0f;
            for (int t = 0; t < terms; t++)
                a = MathF.FusedMultiplyAdd(e[t], p[((long)t * d) + c], a);
            y[c] = a;
        }
    }
}
