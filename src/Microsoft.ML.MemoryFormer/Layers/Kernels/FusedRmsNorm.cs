using System.Numerics;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// <see cref="RmsNorm"/> on the CPU in fp32 as one managed pass forward and one backward, a custom autograd function:
/// y = x · s · g with s = 1 / (‖x‖₂/√d + ε) per row. It replaces the reference's five torch ops forward (norm, div, add,
/// div, mul) and their dozen backward ops and saved temporaries; training runs it 2L + 1 times a step in both models.
/// </summary>
/// <remarks>
/// <para>Backward, with the forward's s and r = ‖x‖₂/√d and u = Σᵢ ∂L/∂yᵢ · gᵢ · xᵢ per row: ∂L/∂xⱼ = s·gⱼ·∂L/∂yⱼ − s²·u/(d·r) · xⱼ (the
/// second term is 0 for an all-zero row, as the gradient of torch's norm at 0), ∂L/∂gⱼ = Σ_rows ∂L/∂yⱼ · xⱼ · s. The gain
/// gradient sums fixed blocks of rows in a fixed order, so the result does not depend on the thread count.</para>
/// <para>Equal to the reference within float rounding (a multiply by s instead of a division, another summation order).</para>
/// </remarks>
internal static unsafe class FusedRmsNorm
{
    /// <summary>Rows per block of the gain gradient's partial sums (fixed, so the sums do not depend on threads).</summary>
    private const int GainBlock = 64;

    /// <summary>True when x and the gain take the managed kernel (both CPU float32, x at least 1-D).</summary>
    public static bool IsSupported(Tensor x, Tensor gain) =>
        TensorMemory.IsCpuFloat32(x) && TensorMemory.IsCpuFloat32(gain) && x.dim() >= 1 && x.shape[^1] == gain.shape[0];

    /// <summary>x [.., d], gain [d] → [.., d]; differentiable in x and gain.</summary>
    public static Tensor Apply(Tensor x, Tensor gain, double epsilon)
    {
        bool needsGrad = is_grad_enabled() && (x.requires_grad || gain.requires_grad);
        if (!needsGrad)
        {
            using var _ = no_grad();
            return Forward(x.contiguous(), gain.contiguous(), (float)epsilon, null);
        }
        return NormFunction.apply(x, gain, epsilon);
    }

    /// <summary>y = x·s·g row by row; writes each row's s and r = ‖x‖₂/√d into <paramref name="scales"/> [2, rows] when given.</summary>
    private static Tensor Forward(Tensor x, Tensor gain, float epsilon, Tensor? scales)
    {
        int d = (int)x.shape[^1];
        int rows = d == 0 ? 0 : (int)(x.numel() / d);
        var y = KernelBuffers.EmptyLike(x);
        float* xp = TensorMemory.Floats(x), yp = TensorMemory.Floats(y), gp = TensorMemory.Floats(gain);
        float* sp = scales is null ? null : TensorMemory.Floats(scales);
        float root = MathF.Sqrt(d);
        KernelParallel.For(rows, 3L * d, (start, end) =>
        {
            for (int n = start; n < end; n++)
            {
                float* xr = xp + ((long)n * d), yr = yp + ((long)n * d);
                float r = MathF.Sqrt(RowKernels.Dot(xr, xr, d)) / root;
                float s = 1f / (r + epsilon);
                if (sp != null)
                {
                    sp[n] = s;
                    sp[rows + n] = r;
                }
                Scale(xr, gp, s, yr, d);
            }
        });
        return y;
    }

    /// <summary>∂L/∂x and ∂L/∂g from the upstream gradient, x and the rows' scales s.</summary>
    private static (Tensor Dx, Tensor Dgain) Backward(Tensor dy, Tensor x, Tensor gain, Tensor scales, bool wantDx, bool wantDgain)
    {
        int d = (int)x.shape[^1];
        int rows = d == 0 ? 0 : (int)(x.numel() / d);
        var dx = wantDx ? KernelBuffers.EmptyLike(x) : null;
        int blocks = (rows + GainBlock - 1) / GainBlock;
        var partial = wantDgain ? KernelBuffers.Zeros(Math.Max(blocks, 1), d) : null;
        float* dyp = TensorMemory.Floats(dy), xp = TensorMemory.Floats(x), gp = TensorMemory.Floats(gain), sp = TensorMemory.Floats(scales);
        float* dxp = dx is null ? null : TensorMemory.Floats(dx), pp = partial is null ? null : TensorMemory.Floats(partial);
        KernelParallel.For(blocks, 6L * d * GainBlock, (startBlock, endBlock) =>
        {
            for (int block = startBlock; block < endBlock; block++)
            {
                float* acc = pp == null ? null : pp + ((long)block * d);
                int last = Math.Min(rows, (block + 1) * GainBlock);
                for (int n = block * GainBlock; n < last; n++)
                {
                    float* xr = xp + ((long)n * d), dyr = dyp + ((long)n * d);
                    float s = sp[n];
                    if (dxp != null)
                    {
                        float r = sp[rows + n];                                   // ‖x‖₂/√d
                        float u = GainDot(dyr, gp, xr, d);
                        float c = r > 0f ? s * s * u / (d * r) : 0f;
                        RowGradient(dyr, gp, xr, s, c, dxp + ((long)n * d), d);
                    }
                    if (acc != null)
                        AddScaledProduct(dyr, xr, s, acc, d);
                }
            }
        });
        Tensor? dgain = null;
        if (partial is not null)
        {
            dgain = zeros(d);
            float* g = TensorMemory.Floats(dgain);
            for (int block = 0; block < blocks; block++)
                RowKernels.Add(pp + ((long)block * d), g, d);
            partial.Dispose();
        }
        return (dx!, dgain!);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scale(float* x, float* g, float s, float* y, int d)
    {
        int i = 0, width = Vector<float>.Count;
        var vs = new Vector<float>(s);
        for (; i <= d - width; i += width)
            Unsafe.WriteUnaligned(y + i, Unsafe.ReadUnaligned<Vector<float>>(x + i) * vs * Unsafe.ReadUnaligned<Vector<float>>(g + i));
        for (; i < d; i++)
            y[i] = x[i] * s * g[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float GainDot(float* dy, float* g, float* x, int d)
    {
        int i = 0, width = Vector<float>.Count;
        var acc = Vector<float>.Zero;
        for (; i <= d - width; i += width)
            acc += Unsafe.ReadUnaligned<Vector<float>>(dy + i) * Unsafe.ReadUnaligned<Vector<float>>(g + i) * Unsafe.ReadUnaligned<Vector<float>>(x + i);
        float sum = Vector.Sum(acc);
        for (; i < d; i++)
            sum += dy[i] * g[i] * x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RowGradient(float* dy, float* g, float* x, float s, float c, float* dx, int d)
    {
        int i = 0, width = Vector<float>.Count;
        Vector<float> vs = new(s), vc = new(c);
        for (; i <= d - width; i += width)
        {
            var v = (vs * Unsafe.ReadUnaligned<Vector<float>>(g + i) * Unsafe.ReadUnaligned<Vector<float>>(dy + i))
                - (vc * Unsafe.ReadUnaligned<Vector<float>>(x + i));
            Unsafe.WriteUnaligned(dx + i, v);
        }
        for (; i < d; i++)
            dx[i] = (s * g[i] * dy[i]) - (c * x[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddScaledProduct(float* dy, float* x, float s, float* acc, int d)
    {
        int i = 0, width = Vector<float>.Count;
        var vs = new Vector<float>(s);
        for (; i <= d - width; i += width)
            Unsafe.WriteUnaligned(acc + i, Unsafe.ReadUnaligned<Vector<float>>(acc + i)
                + (Unsafe.ReadUnaligned<Vector<float>>(dy + i) * Unsafe.ReadUnaligned<Vector<float>>(x + i) * vs));
        for (; i < d; i++)
            acc[i] += dy[i] * x[i] * s;
    }

    /// <summary>The autograd node: saves x, the gain and the rows' scales; the backward is one pass.</summary>
    private sealed class NormFunction : GuardedFunction<NormFunction>
    {
        public override string Name => nameof(FusedRmsNorm);

        protected override Tensor ForwardPass(autograd.AutogradContext ctx, object[] vars)
        {
            var x = ((Tensor)vars[0]).contiguous();
            var gain = ((Tensor)vars[1]).contiguous();
            float epsilon = (float)(double)vars[2];
            int d = (int)x.shape[^1];
            var scales = KernelBuffers.Empty(2 * (d == 0 ? 0 : x.numel() / d));
            var y = Forward(x, gain, epsilon, scales);
            ctx.save_for_backward([x, gain, scales]);
            ctx.save_data("dx", ((Tensor)vars[0]).requires_grad);
            ctx.save_data("dgain", ((Tensor)vars[1]).requires_grad);
            return y;
        }

        protected override List<Tensor> BackwardPass(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var saved = ctx.get_saved_variables();
            var (x, gain, scales) = (saved[0], saved[1], saved[2]);
            bool wantDx = (bool)ctx.get_data("dx"), wantDgain = (bool)ctx.get_data("dgain");
            var (dx, dgain) = Backward(grad_output.contiguous(), x, gain, scales, wantDx, wantDgain);
            scales.Dispose();
            return [dx, dgain, null!];
        }
    }
}
