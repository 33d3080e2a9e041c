using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The loops behind <see cref="FusedSignHash"/> over raw fp32 memory, parallel over tokens: per token row, one
/// vectorised pass computes e = exp(−2|z|/t) for all K·τ elements, then one scalar pass per chunk builds the code,
/// ‖z‖₁, the product Π (1 + e) and, when asked, the Jacobian row.
/// </summary>
internal static unsafe class SignHashKernel
{
    /// <summary>Rows int64 [N, K], weights [N, K] and, when a gradient is needed, J = ∂w/∂x [N, K·τ].</summary>
    public sealed record Result(Tensor Rows, Tensor Weights, Tensor? Jacobian, int BitsPerChunk);

    public static Result Run(Tensor x, int bits, bool l1Scaled, float temperature, bool withJacobian)
    {
        using var scope = NewDisposeScope();
        var xc = x.detach().contiguous();
        int n = (int)xc.shape[0], d = (int)xc.shape[1], k = d / bits;
        var rows = empty(n, k, ScalarType.Int64);
        var weights = empty(n, k, ScalarType.Float32);
        var jacobian = withJacobian ? empty(n, d, ScalarType.Float32) : null;
        nint xp = (nint)TensorMemory.Floats(xc), rp = (nint)TensorMemory.Longs(rows), wp = (nint)TensorMemory.Floats(weights);
        nint jp = jacobian is null ? 0 : (nint)TensorMemory.Floats(jacobian);
        float scale = -2f / (l1Scaled ? 1f : temperature);
        KernelParallel.For(n, 8L * d, (start, end) =>
        {
            var e = new float[d];
            fixed (float* ep = e)
            {
                for (int i = start; i < end; i++)
                {
                    float* xr = (float*)xp + ((long)i * d);
                    ExpOfScaledAbs(xr, ep, d, scale);
                    float* jr = jp == 0 ? null : (float*)jp + ((long)i * d);
                    HashRow(xr, ep, k, bits, l1Scaled, -scale, (long*)rp + ((long)i * k), (float*)wp + ((long)i * k), jr);
                }
            }
        });
        return new Result(rows.MoveToOuterDisposeScope(), weights.MoveToOuterDisposeScope(),
            jacobian?.MoveToOuterDisposeScope(), bits);
    }

    /// <summary>∂L/∂x [N, K·τ] = ∂L/∂w [N, K] (repeated over each chunk's τ elements) · J.</summary>
    public static Tensor Backward(Tensor gradWeights, Tensor jacobian, int bits)
    {
        using var scope = NewDisposeScope();
        var g = gradWeights.to(ScalarType.Float32).contiguous();
        int n = (int)jacobian.shape[0], d = (int)jacobian.shape[1], k = d / bits;
        var dx = empty(n, d, ScalarType.Float32);
        nint gp = (nint)TensorMemory.Floats(g), jp = (nint)TensorMemory.Floats(jacobian), dp = (nint)TensorMemory.Floats(dx);
        KernelParallel.For(n, d, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                float* gr = (float*)gp + ((long)i * k), jr = (float*)jp + ((long)i * d), dr = (float*)dp + ((long)i * d);
                for (int c = 0; c < k; c++)
                {
                    float gc = gr[c];
                    for (int b = c * bits; b < (c + 1) * bits; b++)
                        dr[b] = gc * jr[b];
                }
            }
        });
        return dx.MoveToOuterDisposeScope();
    }

    /// <summary>e[i] = exp(scale · |x[i]|) for i &lt; d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ExpOfScaledAbs(float* x, float* e, int d, float scale)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(scale);
            for (; i + 16 <= d; i += 16)
                Vector512.Exp(Vector512.Abs(Vector512.Load(x + i)) * s).Store(e + i);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            for (; i + 8 <= d; i += 8)
                Vector256.Exp(Vector256.Abs(Vector256.Load(x + i)) * s).Store(e + i);
        }
        for (; i < d; i++)
            e[i] = MathF.Exp(MathF.Abs(x[i]) * scale);
    }

    /// <summary>One token: codes, weights and (if <paramref name="j"/> is not null) the Jacobian row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void HashRow(float* x, float* e, int k, int bits, bool l1Scaled, float twoOverT, long* rows, float* w, float* j)
    {
        for (int c = 0; c < k; c++)
        {
            float* z = x + (c * bits);
            float* ez = e + (c * bits);
            long code = 0;
            float l1 = 0f, product = 1f;
            for (int b = 0; b < bits; b++)
            {
                float v = z[b];
                code = (code << 1) | (v >= 0f ? 1L : 0L);
                l1 += MathF.Abs(v);
                product *= 1f + ez[b];
            }
            float p = 1f / product;
            rows[c] = code + ((long)c << bits);
            w[c] = l1Scaled ? l1 * p : p;
            if (j is null)
                continue;
            float* jz = j + (c * bits);
            for (int b = 0; b < bits; b++)
            {
                float v = z[b];
                float sign = v > 0f ? 1f : v < 0f ? -1f : 0f;
                float sigmoidNeg = ez[b] / (1f + ez[b]);                          // σ(−2|z|/t)
                jz[b] = l1Scaled ? sign * p * (1f + (2f * l1 * sigmoidNeg)) : sign * p * twoOverT * sigmoidNeg;
            }
        }
    }
}
