using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The managed AdamW update of <c>Training/FusedAdamW.cs</c>: one pass per element over a CPU float32 parameter,
/// its gradient and both moments (fp32, or bf16 through <see cref="Bf16Moments"/>), parallel over rows (the first
/// dimension). Each row is updated by one thread with the same arithmetic, so the result does not depend on threads.
/// </summary>
internal static unsafe class AdamWKernel
{
    /// <summary>True when the kernel can update <paramref name="p"/>: CPU float32, contiguous, rows and row width
    /// within int range, with a float32 gradient and CPU moments.</summary>
    public static bool IsSupported(Tensor p, Tensor grad, Tensor moment)
    {
        if (!TensorMemory.IsCpuFloat32(p) || !TensorMemory.IsCpuFloat32(grad) || !p.is_contiguous() || !grad.is_contiguous()
            || moment.device_type != DeviceType.CPU)
            return false;
        long rows = p.dim() == 0 ? 1 : p.shape[0];
        return rows <= int.MaxValue && (rows == 0 || p.numel() / rows <= int.MaxValue);
    }

    /// <summary>One step over every row (in lazy mode, every row whose gradient is not all zero).</summary>
    public static void Step(Tensor p, Tensor grad, Tensor m, Tensor v, Coefficients c, uint salt, bool lazy)
    {
        long rows = p.dim() == 0 ? 1 : p.shape[0];
        int w = rows == 0 ? 0 : (int)(p.numel() / rows);
        var moments = new Moments(m, v, salt);
        nint pp = (nint)TensorMemory.Floats(p), gp = (nint)TensorMemory.Floats(grad);
        KernelParallel.For((int)rows, w, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                long o = r * w;
                if (lazy && IsZero((float*)gp + o, w))
                    continue;
                moments.UpdateRow(pp, gp, o, w, c);
            }
        });
    }

    /// <summary>The lazy step over the given rows only (all others have a zero gradient).</summary>
    public static void StepRows(Tensor p, Tensor grad, Tensor m, Tensor v, Coefficients c, uint salt, int[] rows)
    {
        int w = (int)(p.numel() / p.shape[0]);
        var moments = new Moments(m, v, salt);
        nint pp = (nint)TensorMemory.Floats(p), gp = (nint)TensorMemory.Floats(grad);
        KernelParallel.For(rows.Length, 4L * w, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                long o = (long)rows[i] * w;
                if (!IsZero((float*)gp + o, w))
                    moments.UpdateRow(pp, gp, o, w, c);
            }
        });
    }

    /// <summary>
    /// One dense step (fp32 moments) that updates only the <paramref name="active"/> rows in full. Every other row has a zero
    /// gradient and zero moments, so the full update leaves its moments at zero and its parameter at <c>p·(1 − lr·λ)</c>
    /// (the step term is <c>−0</c>): that product alone is computed for it, the same bits without reading its gradient or moments.
    /// </summary>
    public static void StepActive(Tensor p, Tensor grad, Tensor m, Tensor v, Coefficients c, bool[] active)
    {
        int rows = (int)p.shape[0];
        int w = rows == 0 ? 0 : (int)(p.numel() / rows);
        nint pp = (nint)TensorMemory.Floats(p), gp = (nint)TensorMemory.Floats(grad), mp = (nint)TensorMemory.Floats(m), vp = (nint)TensorMemory.Floats(v);
        KernelParallel.For(rows, w, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                long o = r * w;
                if (active[r])
                    UpdateRow((float*)pp + o, (float*)gp + o, (float*)mp + o, (float*)vp + o, w, c);
                else if (c.Decay != 1f)
                    Scale((float*)pp + o, w, c.Decay);
            }
        });
    }

    /// <summary>x ← x · <paramref name="factor"/> over <paramref name="n"/> floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scale(float* x, int n, float factor)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var f = Vector512.Create(factor);
            for (; i + 16 <= n; i += 16)
                (Vector512.Load(x + i) * f).Store(x + i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var f = Vector256.Create(factor);
            for (; i + 8 <= n; i += 8)
                (Vector256.Load(x + i) * f).Store(x + i);
        }
        for (; i < n; i++)
            x[i] *= factor;
    }

    /// <summary>Per row (first dimension) of the fp32 moments, whether either holds a non-zero value.</summary>
    public static bool[] NonZeroMomentRows(Tensor m, Tensor v)
    {
        long rows = m.dim() == 0 ? 1 : m.shape[0];
        int w = rows == 0 ? 0 : (int)(m.numel() / rows);
        float* mp = TensorMemory.Floats(m), vp = TensorMemory.Floats(v);
        var result = new bool[rows];
        for (long r = 0; r < rows; r++)
            result[r] = !IsZero(mp + (r * w), w) || !IsZero(vp + (r * w), w);
        return result;
    }

    /// <summary>The step's scalars, rounded to fp32 as torch's CPU kernels do for a float tensor.</summary>
    public readonly struct Coefficients(double lr, double beta1, double beta2, double eps, double weightDecay, long step, double gradScale)
    {
        public readonly float GradScale = (float)gradScale;
        public readonly float Decay = (float)(1 - (lr * weightDecay));
        public readonly float Beta1 = (float)beta1;
        public readonly float OneMinusBeta1 = (float)(1 - beta1);
        public readonly float Beta2 = (float)beta2;
        public readonly float OneMinusBeta2 = (float)(1 - beta2);
        public readonly float Bias2Sqrt = (float)Math.Sqrt(1 - Math.Pow(beta2, step));
        public readonly float Eps = (float)eps;
        public readonly float NegStepSize = (float)(-lr / (1 - Math.Pow(beta1, step)));
        public readonly double Lr = lr;
        public readonly double WeightDecay = weightDecay;
        public readonly double Bias2SqrtDouble = Math.Sqrt(1 - Math.Pow(beta2, step));
        public readonly double StepSize = lr / (1 - Math.Pow(beta1, step));
    }

    /// <summary>One parameter's moment tensors and this step's rounding seed (bf16 moments).</summary>
    private readonly struct Moments(Tensor m, Tensor v, uint salt)
    {
        private readonly bool isBFloat16 = m.dtype == ScalarType.BFloat16;
        private readonly nint mPtr = (nint)TensorMemory.Address(m);
        private readonly nint vPtr = (nint)TensorMemory.Address(v);

        /// <summary>Updates the row of <paramref name="w"/> elements at element offset <paramref name="o"/>.</summary>
        public void UpdateRow(nint p, nint g, long o, int w, in Coefficients c)
        {
            if (isBFloat16)
                Bf16Moments.UpdateRow((float*)p + o, (float*)g + o, (ushort*)mPtr + o, (ushort*)vPtr + o, w, c, o, salt);
            else
                AdamWKernel.UpdateRow((float*)p + o, (float*)g + o, (float*)mPtr + o, (float*)vPtr + o, w, c);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool IsZero(float* g, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= n; i += 8)
            {
                if (Vector256.Load(g + i) != Vector256<float>.Zero)
                    return false;
            }
        }
        for (; i < n; i++)
        {
            if (g[i] != 0f)
                return false;
        }
        return true;
    }

    /// <summary>One AdamW step over <paramref name="n"/> contiguous fp32 elements (also a column tile of a row: the
    /// update is elementwise, so any split of a row gives the same bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void UpdateRow(float* p, float* g, float* m, float* v, int n, Coefficients c)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            i = UpdateRow512(p, g, m, v, n, c);
        if (Vector256.IsHardwareAccelerated)
        {
            var decay = Vector256.Create(c.Decay);
            var b1 = Vector256.Create(c.Beta1);
            var omb1 = Vector256.Create(c.OneMinusBeta1);
            var b2 = Vector256.Create(c.Beta2);
            var omb2 = Vector256.Create(c.OneMinusBeta2);
            var bias2 = Vector256.Create(c.Bias2Sqrt);
            var eps = Vector256.Create(c.Eps);
            var negStep = Vector256.Create(c.NegStepSize);
            var scale = Vector256.Create(c.GradScale);
            bool scaled = c.GradScale != 1f;
            for (; i + 8 <= n; i += 8)                                   // from where the 512-bit loop stopped
            {
                // Same fp32 operation order as torch's mul_, add_(alpha), addcmul_, sqrt/div/add_, addcdiv_;
                // no FMA contraction, so results match torch.optim.AdamW to the last bit or two.
                var gi = scaled ? Vector256.Load(g + i) * scale : Vector256.Load(g + i);
                var pi = Vector256.Load(p + i) * decay;
                var mi = (Vector256.Load(m + i) * b1) + (omb1 * gi);
                var vi = (Vector256.Load(v + i) * b2) + (omb2 * gi * gi);
                var denom = (Vector256.Sqrt(vi) / bias2) + eps;
                pi += negStep * mi / denom;
                pi.Store(p + i);
                mi.Store(m + i);
                vi.Store(v + i);
            }
        }
        for (; i < n; i++)
        {
            float gi = c.GradScale != 1f ? g[i] * c.GradScale : g[i];
            float pi = p[i] * c.Decay;
            float mi = (m[i] * c.Beta1) + (c.OneMinusBeta1 * gi);
            float vi = (v[i] * c.Beta2) + (c.OneMinusBeta2 * gi * gi);
            float denom = (MathF.Sqrt(vi) / c.Bias2Sqrt) + c.Eps;
            p[i] = pi + (c.NegStepSize * mi / denom);
            m[i] = mi;
            v[i] = vi;
        }
    }

    /// <summary>The 512-bit loop of <see cref="UpdateRow"/> (16 elements at a time): the same elementwise operations in the
    /// same order, so the same bits, with half the instructions. Returns how many elements it did.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int UpdateRow512(float* p, float* g, float* m, float* v, int n, Coefficients c)
    {
        Vector512<float> decay = Vector512.Create(c.Decay), b1 = Vector512.Create(c.Beta1), omb1 = Vector512.Create(c.OneMinusBeta1),
            b2 = Vector512.Create(c.Beta2), omb2 = Vector512.Create(c.OneMinusBeta2), bias2 = Vector512.Create(c.Bias2Sqrt),
            eps = Vector512.Create(c.Eps), negStep = Vector512.Create(c.NegStepSize), scale = Vector512.Create(c.GradScale);
        bool scaled = c.GradScale != 1f;
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var gi = scaled ? Vector512.Load(g + i) * scale : Vector512.Load(g + i);
            var pi = Vector512.Load(p + i) * decay;
            var mi = (Vector512.Load(m + i) * b1) + (omb1 * gi);
            var vi = (Vector512.Load(v + i) * b2) + (omb2 * gi * gi);
            var denom = (Vector512.Sqrt(vi) / bias2) + eps;
            pi += negStep * mi / denom;
            pi.Store(p + i);
            mi.Store(m + i);
            vi.Store(v + i);
        }
        return i;
    }
}
