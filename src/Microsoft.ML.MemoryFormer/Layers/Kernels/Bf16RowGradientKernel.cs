using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static Microsoft.ML.MemoryFormer.Layers.Kernels.RowGradientKernel;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// <see cref="RowGradientKernel.Run"/> reading ∂L/∂y from its paired bf16 copy (<see cref="Bf16GradientRows"/>): half the
/// bytes a hit reads. Each gradient vector is widened exactly and each table-gradient column takes the fp32 kernel's
/// multiply-adds over the hits in the same order, so when ∂L/∂y holds bf16 values already the table gradient is the fp32
/// kernel's bits (the inner products sum the columns in another order: rounding); otherwise the difference is ∂L/∂y's
/// rounding (relative 2⁻⁹ per element), accumulated in fp32.
/// </summary>
/// <remarks>
/// 256-column tiles first (<see cref="WideTiles"/>): a hit's 512 bytes of bf16 cover 256 columns, so each hit's row is visited
/// half as often as by the fp32 kernel's 128-column tiles for the same bytes a visit. With 128-column tiles the bf16 pass was
/// no faster than the fp32 one, and an fp32 kernel with 256-column tiles was slower (<c>perf probe-rowpass</c>,
/// docs/benchmarks.md "Row pass over a bf16 copy of ∂L/∂y"): the halved bytes pay only with the halved visits.
/// </remarks>
internal static unsafe class Bf16RowGradientKernel
{
    /// <summary>
    /// dst[0..h) = Σ_j w[j] · grad[tokens[j]] and, when <paramref name="gw"/> is not null, gw[pairs[j]] += ⟨grad[tokens[j]], row⟩,
    /// with grad the paired bf16 copy [N, h/2 lanes]; h a multiple of 32. Returns ‖dst‖².
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Run(float* row, uint* grad, int h, int* tokens, int* pairs, float* w, int count, float* dst, float* gw, bool cached = false)
    {
        bool streaming = !cached && RowGradientKernel.IsStreamable(dst, h);
        float squares = 0f;
        int c = 0;
        if (WideTiles)
        {
            for (; c + 256 <= h; c += 256)
                squares += Tile256(row, grad, h, c, tokens, pairs, w, count, dst, gw, streaming);
        }
        for (; c + 128 <= h; c += 128)
            squares += Tile128(row, grad, h, c, tokens, pairs, w, count, dst, gw, streaming);
        for (; c < h; c += 32)
            squares += Tile32(row, grad, h, c, tokens, pairs, w, count, dst, gw);
        return squares;
    }

    /// <summary>Whether 256-column tiles are taken first (each hit's row visited half as often; the table row read from L1): on, since
    /// with them the pass ran 1.3–1.8× faster than the fp32 kernel against ≈ 1.0× with 128-column tiles (<c>perf probe-rowpass</c>). Probe switch.</summary>
    internal static bool WideTiles { get; set; } = true;

    /// <summary>
    /// 256 columns: the gradient sum in 16 registers, eight 512-bit loads a hit, the table row's tile read from L1 by the
    /// inner products (no room for it in registers). Half as many visits of each hit's row as <see cref="Tile128"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Tile256(float* row, uint* grad, int h, int c, int* tokens, int* pairs, float* w, int count, float* dst, float* gw,
        bool streaming)
    {
        float* t = row + c;
        Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
            a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
        long stride = h / 2;
        for (int j = 0; j < count; j++)
        {
            uint* g = grad + (tokens[j] * stride) + (c / 2);
            var wj = Vector512.Create(w[j]);
            Vector512<float> p, q, lo, hi;
            var u = Vector512.Load(g);
            (lo, hi) = (Bf16GradientRows.Low(u), Bf16GradientRows.High(u));
            a0 = Vector512.FusedMultiplyAdd(lo, wj, a0); a1 = Vector512.FusedMultiplyAdd(hi, wj, a1);
            p = lo * Vector512.Load(t); q = hi * Vector512.Load(t + 16);
            u = Vector512.Load(g + 16);
            (lo, hi) = (Bf16GradientRows.Low(u), Bf16GradientRows.High(u));
            a2 = Vector512.FusedMultiplyAdd(lo, wj, a2); a3 = Vector512.FusedMultiplyAdd(hi, wj, a3);
            p = Vector512.FusedMultiplyAdd(lo, Vector512.Load(t + 32), p); q = Vector512.FusedMultiplyAdd(hi, Vector512.Load(t + 48), q);
            u = Vector512.Load(g + 32);
            (lo, hi) = (Bf16GradientRows.Low(u), Bf16GradientRows.High(u));
            a4 = Vector512.FusedMultiplyAdd(lo, wj, a4); a5 = Vector512.FusedMultiplyAdd(hi, wj, a5);
            p = Vector512.FusedMultiplyAdd(lo, Vector512.Load(t + 64), p); q = Vector512.FusedMultiplyAdd(hi, Vector512.Load(t + 80), q);
            u = Vector512.Load(g + 48);
            (lo, hi) = (Bf16GradientRows.Low(u), Bf16GradientRows.High(u));
            a6 = Vector512.FusedMultiplyAdd(lo, wj, a6); a7 = Vector512.FusedMultiplyAdd(hi, wj, a7);
            p = Vector512.FusedMultiplyAdd(lo, Vector512.Load(t + 96), p); q = Vector512.FusedMultiplyAdd(hi, Vector512.Load(t + 112), q);
            u = Vector512.Load(g + 64);
            (lo, hi) = (Bf16GradientRows.Low(u), Bf16GradientRows.High(u));
            a8 = Vector512.FusedMultiplyAdd(lo, wj, a8); a9 = Vector512.FusedMultiplyAdd(hi, wj, a9);
            p = Vector512.FusedMultiplyAdd(lo, Vector512.Load(t + 128), p); q = Vector512.FusedMultiplyAdd(hi, Vector512.Load(t + 144), q);
            u = Vector512.Load(g + 80);
            (lo, hi) = (Bf16GradientRows.Low(u), Bf16GradientRows.High(u));
            a10 = Vector512.FusedMultiplyAdd(lo, wj, a10); a11 = Vector512.FusedMultiplyAdd(hi, wj, a11);
            p = Vector512.FusedMultiplyAdd(lo, Vector512.Load(t + 160), p); q = Vector512.FusedMultiplyAdd(hi, Vector512.Load(t + 176), q);
            u = Vector512.Load(g + 96);
            (lo, hi) = (Bf16GradientRows.Low(u), Bf16GradientRows.High(u));
            a12 = Vector512.FusedMultiplyAdd(lo, wj, a12); a13 = Vector512.FusedMultiplyAdd(hi, wj, a13);
            p = Vector512.FusedMultiplyAdd(lo, Vector512.Load(t + 192), p); q = Vector512.FusedMultiplyAdd(hi, Vector512.Load(t + 208), q);
            u = Vector512.Load(g + 112);
            (lo, hi) = (Bf16GradientRows.Low(u), Bf16GradientRows.High(u));
            a14 = Vector512.FusedMultiplyAdd(lo, wj, a14); a15 = Vector512.FusedMultiplyAdd(hi, wj, a15);
            p = Vector512.FusedMultiplyAdd(lo, Vector512.Load(t + 224), p); q = Vector512.FusedMultiplyAdd(hi, Vector512.Load(t + 240), q);
            if (gw != null)
                gw[pairs[j]] += RowGradientKernel.TreeSum(p + q);
        }
        float* d = dst + c;
        Store(a0, d, streaming); Store(a1, d + 16, streaming); Store(a2, d + 32, streaming); Store(a3, d + 48, streaming);
        Store(a4, d + 64, streaming); Store(a5, d + 80, streaming); Store(a6, d + 96, streaming); Store(a7, d + 112, streaming);
        Store(a8, d + 128, streaming); Store(a9, d + 144, streaming); Store(a10, d + 160, streaming); Store(a11, d + 176, streaming);
        Store(a12, d + 192, streaming); Store(a13, d + 208, streaming); Store(a14, d + 224, streaming); Store(a15, d + 240, streaming);
        var s0 = Vector512.FusedMultiplyAdd(a1, a1, a0 * a0);
        var s1 = Vector512.FusedMultiplyAdd(a3, a3, a2 * a2);
        s0 = Vector512.FusedMultiplyAdd(a5, a5, Vector512.FusedMultiplyAdd(a4, a4, s0));
        s1 = Vector512.FusedMultiplyAdd(a7, a7, Vector512.FusedMultiplyAdd(a6, a6, s1));
        s0 = Vector512.FusedMultiplyAdd(a9, a9, Vector512.FusedMultiplyAdd(a8, a8, s0));
        s1 = Vector512.FusedMultiplyAdd(a11, a11, Vector512.FusedMultiplyAdd(a10, a10, s1));
        s0 = Vector512.FusedMultiplyAdd(a13, a13, Vector512.FusedMultiplyAdd(a12, a12, s0));
        s1 = Vector512.FusedMultiplyAdd(a15, a15, Vector512.FusedMultiplyAdd(a14, a14, s1));
        return Vector512.Sum(s0 + s1);
    }

    /// <summary>128 columns: the table row's tile and the gradient sum in 16 registers, four 512-bit loads a hit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Tile128(float* row, uint* grad, int h, int c, int* tokens, int* pairs, float* w, int count, float* dst, float* gw,
        bool streaming)
    {
        float* t = row + c;
        Vector512<float> t0 = Vector512.Load(t), t1 = Vector512.Load(t + 16), t2 = Vector512.Load(t + 32), t3 = Vector512.Load(t + 48),
            t4 = Vector512.Load(t + 64), t5 = Vector512.Load(t + 80), t6 = Vector512.Load(t + 96), t7 = Vector512.Load(t + 112);
        Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        long stride = h / 2;
        for (int j = 0; j < count; j++)
        {
            uint* g = grad + (tokens[j] * stride) + (c / 2);
            var wj = Vector512.Create(w[j]);
            Vector512<uint> u0 = Vector512.Load(g), u1 = Vector512.Load(g + 16), u2 = Vector512.Load(g + 32), u3 = Vector512.Load(g + 48);
            Vector512<float> g0 = Bf16GradientRows.Low(u0), g1 = Bf16GradientRows.High(u0), g2 = Bf16GradientRows.Low(u1), g3 = Bf16GradientRows.High(u1),
                g4 = Bf16GradientRows.Low(u2), g5 = Bf16GradientRows.High(u2), g6 = Bf16GradientRows.Low(u3), g7 = Bf16GradientRows.High(u3);
            a0 = Vector512.FusedMultiplyAdd(g0, wj, a0);
            a1 = Vector512.FusedMultiplyAdd(g1, wj, a1);
            a2 = Vector512.FusedMultiplyAdd(g2, wj, a2);
            a3 = Vector512.FusedMultiplyAdd(g3, wj, a3);
            a4 = Vector512.FusedMultiplyAdd(g4, wj, a4);
            a5 = Vector512.FusedMultiplyAdd(g5, wj, a5);
            a6 = Vector512.FusedMultiplyAdd(g6, wj, a6);
            a7 = Vector512.FusedMultiplyAdd(g7, wj, a7);
            if (gw == null)
                continue;
            // The fp32 kernel's products in its order (RowGradientKernel.Tile512).
            var p = Vector512.FusedMultiplyAdd(g4, t4, Vector512.FusedMultiplyAdd(g1, t1, g0 * t0));
            var q = Vector512.FusedMultiplyAdd(g5, t5, Vector512.FusedMultiplyAdd(g3, t3, g2 * t2));
            p = Vector512.FusedMultiplyAdd(g6, t6, p);
            q = Vector512.FusedMultiplyAdd(g7, t7, q);
            gw[pairs[j]] += RowGradientKernel.TreeSum(p + q);
        }
        return RowGradientKernel.StoreTile(dst + c, streaming, a0, a1, a2, a3, a4, a5, a6, a7);
    }

    /// <summary>The last h mod 128 columns, 32 at a time (one lane vector a hit); written through the cache.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Tile32(float* row, uint* grad, int h, int c, int* tokens, int* pairs, float* w, int count, float* dst, float* gw)
    {
        Vector512<float> t0 = Vector512.Load(row + c), t1 = Vector512.Load(row + c + 16);
        Vector512<float> a0 = Vector512<float>.Zero, a1 = a0;
        long stride = h / 2;
        for (int j = 0; j < count; j++)
        {
            var u = Vector512.Load(grad + (tokens[j] * stride) + (c / 2));
            Vector512<float> g0 = Bf16GradientRows.Low(u), g1 = Bf16GradientRows.High(u);
            var wj = Vector512.Create(w[j]);
            a0 = Vector512.FusedMultiplyAdd(g0, wj, a0);
            a1 = Vector512.FusedMultiplyAdd(g1, wj, a1);
            if (gw != null)
                gw[pairs[j]] += RowGradientKernel.TreeSum(Vector512.FusedMultiplyAdd(g1, t1, g0 * t0));
        }
        a0.Store(dst + c);
        a1.Store(dst + c + 16);
        return Vector512.Sum(Vector512.FusedMultiplyAdd(a1, a1, a0 * a0));
    }
}
