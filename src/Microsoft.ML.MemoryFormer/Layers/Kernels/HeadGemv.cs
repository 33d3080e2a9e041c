using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The LM head at decode time, logits [B, V] = x [B, d] · Wᵀ for a few rows, as a managed GEMV that streams the
/// weight [V, d] once at memory bandwidth: each vocabulary row is one contiguous dot product per sequence, split
/// over threads by vocabulary range (issue 7). Only for inference on CPU fp32; training keeps <c>nn.Linear</c>.
/// </summary>
internal static class HeadGemv
{
    /// <summary>Most rows per call; above it the GEMM reuses each weight row well enough.</summary>
    public const int MaxRows = 4;

    /// <summary>True when x [B, d] and weight [V, d] take the managed kernel.</summary>
    public static bool Applies(Tensor x, Tensor weight) =>
        TorchRuntime.UseFusedKernels && !is_grad_enabled() && x.dim() == 2 && x.shape[0] <= MaxRows
        && TensorMemory.IsCpuFloat32(x) && TensorMemory.IsCpuFloat32(weight) && weight.is_contiguous();

    /// <summary>x [B, d], weight [V, d] → [B, V].</summary>
    public static unsafe Tensor Apply(Tensor x, Tensor weight)
    {
        using var scope = NewDisposeScope();
        var xc = x.contiguous();
        int b = (int)xc.shape[0], d = (int)xc.shape[1], v = (int)weight.shape[0];
        var y = empty(b, v, ScalarType.Float32);
        nint xp = (nint)TensorMemory.Floats(xc), wp = (nint)TensorMemory.Floats(weight), yp = (nint)TensorMemory.Floats(y);
        KernelParallel.For(v, (long)d * b, (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                float* w = (float*)wp + ((long)r * d);
                for (int i = 0; i < b; i++)
                    ((float*)yp)[((long)i * v) + r] = RowKernels.Dot((float*)xp + ((long)i * d), w, d);
            }
        });
        return y.MoveToOuterDisposeScope();
    }
}
