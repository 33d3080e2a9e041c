using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The per-token operations of the fused inference encoder (<see cref="FusedEncoderBlock"/>) in SIMD: RMSNorm, LayerNorm,
/// rotary and the Memory Layer's weighted bag sum with the whole output row in AVX-512 registers. The decode step keeps
/// its scalar <see cref="VectorKernels"/> (batch 1 is bound by the head, not by these).
/// </summary>
/// <remarks>
/// RMSNorm, rotary and the bag sum do the same float operations per element as <see cref="VectorKernels"/> and
/// <see cref="RowKernels.WeightedBagSum"/> (no FMA where those have none, the bag sum's FMA chain from the bias through
/// the chunks in order), so they give the same bits. LayerNorm sums its mean and variance in eight lanes instead of one
/// running scalar (whose add latency made it the slowest step of a token), a different rounding of the same sums.
/// </remarks>
internal static unsafe class EncoderKernels
{
    /// <summary>RMSNorm as <see cref="VectorKernels.RmsNorm"/>: y = x · (1 / (‖x‖₂/√d + ε)) · g, the same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm(float* x, float* gain, int d, float epsilon, float* y)
    {
        float scale = 1f / ((MathF.Sqrt(RowKernels.Dot(x, x, d)) / MathF.Sqrt(d)) + epsilon);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(scale);
            for (; i + 16 <= d; i += 16)
                (Vector512.Load(x + i) * s * Vector512.Load(gain + i)).Store(y + i);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            for (; i + 8 <= d; i += 8)
                (Vector256.Load(x + i) * s * Vector256.Load(gain + i)).Store(y + i);
        }
        for (; i < d; i++)
            y[i] = x[i] * scale * gain[i];
    }

    /// <summary>dst[0, n) = src[0, n) in 512-bit registers, inline: a token's 512-byte row costs a call into <c>Memmove</c> otherwise
    /// (≈ 4 % of a long-row encoder pass in the Intel profile).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(float* src, float* dst, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= n; i += 16)
                Vector512.Load(src + i).Store(dst + i);
        }
        for (; i < n; i++)
            dst[i] = src[i];
    }

    /// <summary>LayerNorm over n values: y = (x − mean) / √(var + ε) · w + b, biased variance as torch; the sums in
    /// eight lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void LayerNorm(float* x, float* weight, float* bias, int n, float epsilon, float* y)
    {
        if (!Vector256.IsHardwareAccelerated || n < 8)
        {
            VectorKernels.LayerNorm(x, weight, bias, n, epsilon, y);
            return;
        }
        int i = 0;
        var sum = Vector256<float>.Zero;
        for (; i + 8 <= n; i += 8)
            sum += Vector256.Load(x + i);
        float mean = Vector256.Sum(sum);
        for (; i < n; i++)
            mean += x[i];
        mean /= n;
        var m = Vector256.Create(mean);
        var squares = Vector256<float>.Zero;
        for (i = 0; i + 8 <= n; i += 8)
        {
            var c = Vector256.Load(x + i) - m;
            squares += c * c;
        }
        float variance = Vector256.Sum(squares);
        for (; i < n; i++)
        {
            float c = x[i] - mean;
            variance += c * c;
        }
        float inverse = 1f / MathF.Sqrt((variance / n) + epsilon);
        Normalize(x, weight, bias, n, mean, inverse, y);
    }

    /// <summary>
    /// <see cref="LayerNorm"/> of two rows at once (two tokens of <c>FusedEncoderBlock</c>'s paired passes): each row's sums in its own
    /// eight-lane chain, as alone, but the two chains advanced in the same loop, so the add latency of one overlaps the other's instead of
    /// the second row's chains starting where the first's end. The same operations per row in the same order: the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void LayerNormPair(float* x0, float* x1, float* weight, float* bias, int n, float epsilon, float* y0, float* y1)
    {
        if (!Vector256.IsHardwareAccelerated || n < 8 || n % 8 != 0)
        {
            LayerNorm(x0, weight, bias, n, epsilon, y0);
            LayerNorm(x1, weight, bias, n, epsilon, y1);
            return;
        }
        Vector256<float> sum0 = Vector256<float>.Zero, sum1 = sum0;
        for (int i = 0; i < n; i += 8)
        {
            sum0 += Vector256.Load(x0 + i);
            sum1 += Vector256.Load(x1 + i);
        }
        float mean0 = Vector256.Sum(sum0) / n, mean1 = Vector256.Sum(sum1) / n;
        Vector256<float> m0 = Vector256.Create(mean0), m1 = Vector256.Create(mean1), squares0 = Vector256<float>.Zero, squares1 = squares0;
        for (int i = 0; i < n; i += 8)
        {
            var c0 = Vector256.Load(x0 + i) - m0;
            var c1 = Vector256.Load(x1 + i) - m1;
            squares0 += c0 * c0;
            squares1 += c1 * c1;
        }
        float inverse0 = 1f / MathF.Sqrt((Vector256.Sum(squares0) / n) + epsilon), inverse1 = 1f / MathF.Sqrt((Vector256.Sum(squares1) / n) + epsilon);
        Normalize(x0, weight, bias, n, mean0, inverse0, y0);
        Normalize(x1, weight, bias, n, mean1, inverse1, y1);
    }

    /// <summary>y = (x − mean) · inverse · w + b elementwise: <see cref="LayerNorm"/>'s and <see cref="LayerNormPair"/>'s last pass (the
    /// same operations per element at every vector width).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Normalize(float* x, float* weight, float* bias, int n, float mean, float inverse, float* y)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var m16 = Vector512.Create(mean);
            var inv16 = Vector512.Create(inverse);
            for (; i + 16 <= n; i += 16)
                (((Vector512.Load(x + i) - m16) * inv16 * Vector512.Load(weight + i)) + Vector512.Load(bias + i)).Store(y + i);
        }
        var m = Vector256.Create(mean);
        var inv = Vector256.Create(inverse);
        for (; i + 8 <= n; i += 8)
            (((Vector256.Load(x + i) - m) * inv * Vector256.Load(weight + i)) + Vector256.Load(bias + i)).Store(y + i);
        for (; i < n; i++)
            y[i] = ((x[i] - mean) * inverse * weight[i]) + bias[i];
    }

    /// <summary>Rotary as <see cref="VectorKernels.Rotary"/> (rotate-half on the first r dims of each head, in place), the
    /// same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rotary(float* x, int heads, int headWidth, int r, float* cos, float* sin)
    {
        int half = r / 2;
        if (half == 4 && Vector256.IsHardwareAccelerated)
        {
            RotaryOfEight(x, heads, headWidth, cos, sin);
            return;
        }
        for (int h = 0; h < heads; h++)
        {
            float* v = x + (h * headWidth);
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                for (; i + 16 <= half; i += 16)
                {
                    var x1 = Vector512.Load(v + i);
                    var x2 = Vector512.Load(v + i + half);
                    ((x1 * Vector512.Load(cos + i)) - (x2 * Vector512.Load(sin + i))).Store(v + i);
                    ((x2 * Vector512.Load(cos + i + half)) + (x1 * Vector512.Load(sin + i + half))).Store(v + i + half);
                }
            }
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i + 8 <= half; i += 8)
                {
                    var x1 = Vector256.Load(v + i);
                    var x2 = Vector256.Load(v + i + half);
                    ((x1 * Vector256.Load(cos + i)) - (x2 * Vector256.Load(sin + i))).Store(v + i);
                    ((x2 * Vector256.Load(cos + i + half)) + (x1 * Vector256.Load(sin + i + half))).Store(v + i + half);
                }
            }
            for (; i < half; i++)
            {
                float x1 = v[i], x2 = v[i + half];
                v[i] = (x1 * cos[i]) - (x2 * sin[i]);
                v[i + half] = (x2 * cos[i + half]) + (x1 * sin[i + half]);
            }
        }
    }

    /// <summary>
    /// <see cref="Rotary"/> for r = 8 (the default quarter of a 32-wide head): a head's 8 rotated values in one AVX register
    /// [x₁, x₂], the halves swapped for [x₂, x₁]; y = [x₁, x₂]·cos + ±([x₂, x₁]·sin), the sign flipped on the lower half's
    /// products. Per element the same products and the same add or subtract (a − b and a + (−b) are the same IEEE operation),
    /// so the same bits as the scalar loop, which the four-wide halves took before.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RotaryOfEight(float* x, int heads, int headWidth, float* cos, float* sin)
    {
        var c = Vector256.Load(cos);
        var s = Vector256.Load(sin);
        var negateLower = Vector256.Create(int.MinValue, int.MinValue, int.MinValue, int.MinValue, 0, 0, 0, 0).AsSingle();
        for (int h = 0; h < heads; h++)
        {
            float* v = x + (h * headWidth);
            var a = Vector256.Load(v);                                             // [x₁ (4), x₂ (4)]
            var swapped = Vector256.Create(a.GetUpper(), a.GetLower());            // [x₂, x₁]
            ((a * c) + ((swapped * s) ^ negateLower)).Store(v);
        }
    }

    /// <summary>
    /// dst = init + Σ_j w[j] · src[idx[j], :] as <see cref="RowKernels.WeightedBagSum"/> (the same bits; init required):
    /// with AVX-512 and h a multiple of 16, 128 columns at a time in eight registers, so h = 128 walks the bag once
    /// instead of twice and h = 160 twice instead of six times.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BagSum(float* src, int h, int* idx, float* w, int count, float* dst, float* init)
    {
        if (!Vector512.IsHardwareAccelerated || h % 16 != 0)
        {
            RowKernels.WeightedBagSum(src, h, idx, w, count, dst, init);
            return;
        }
        int c = 0;
        for (; c + 128 <= h; c += 128)
        {
            Vector512<float> a0 = Vector512.Load(init + c), a1 = Vector512.Load(init + c + 16), a2 = Vector512.Load(init + c + 32),
                a3 = Vector512.Load(init + c + 48), a4 = Vector512.Load(init + c + 64), a5 = Vector512.Load(init + c + 80),
                a6 = Vector512.Load(init + c + 96), a7 = Vector512.Load(init + c + 112);
            for (int j = 0; j < count; j++)
            {
                float* r = src + ((long)idx[j] * h) + c;
                var wj = Vector512.Create(w[j]);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(r), wj, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 16), wj, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 32), wj, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 48), wj, a3);
                a4 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 64), wj, a4);
                a5 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 80), wj, a5);
                a6 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 96), wj, a6);
                a7 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 112), wj, a7);
            }
            float* d = dst + c;
            a0.Store(d); a1.Store(d + 16); a2.Store(d + 32); a3.Store(d + 48);
            a4.Store(d + 64); a5.Store(d + 80); a6.Store(d + 96); a7.Store(d + 112);
        }
        for (; c + 32 <= h; c += 32)
        {
            Vector512<float> a0 = Vector512.Load(init + c), a1 = Vector512.Load(init + c + 16);
            for (int j = 0; j < count; j++)
            {
                float* r = src + ((long)idx[j] * h) + c;
                var wj = Vector512.Create(w[j]);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(r), wj, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(r + 16), wj, a1);
            }
            a0.Store(dst + c); a1.Store(dst + c + 16);
        }
        for (; c < h; c += 16)
        {
            var a = Vector512.Load(init + c);
            for (int j = 0; j < count; j++)
                a = Vector512.FusedMultiplyAdd(Vector512.Load(src + ((long)idx[j] * h) + c), Vector512.Create(w[j]), a);
            a.Store(dst + c);
        }
    }
    /// <summary>
    /// <see cref="BagSum"/> of three tables of one shape under one hash (Q, K and V of a token: the same rows and weights) in one
    /// walk of the bag: 128 columns of each table at a time in 24 AVX-512 accumulators, so each step issues the three rows'
    /// loads together. Every output column is the same FMA chain from its bias through the chunks in order as
    /// <see cref="BagSum"/>'s, so the same bits; h not a multiple of 128 (or no AVX-512) takes three <see cref="BagSum"/> calls.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BagSum3(float* a, float* b, float* c, int h, int* idx, float* w, int count,
        float* da, float* db, float* dc, float* ia, float* ib, float* ic)
    {
        if (!Vector512.IsHardwareAccelerated || h % 128 != 0)
        {
            BagSum(a, h, idx, w, count, da, ia);
            BagSum(b, h, idx, w, count, db, ib);
            BagSum(c, h, idx, w, count, dc, ic);
            return;
        }
        for (int col = 0; col < h; col += 128)
        {
            Vector512<float> a0 = Vector512.Load(ia + col), a1 = Vector512.Load(ia + col + 16), a2 = Vector512.Load(ia + col + 32),
                a3 = Vector512.Load(ia + col + 48), a4 = Vector512.Load(ia + col + 64), a5 = Vector512.Load(ia + col + 80),
                a6 = Vector512.Load(ia + col + 96), a7 = Vector512.Load(ia + col + 112);
            Vector512<float> b0 = Vector512.Load(ib + col), b1 = Vector512.Load(ib + col + 16), b2 = Vector512.Load(ib + col + 32),
                b3 = Vector512.Load(ib + col + 48), b4 = Vector512.Load(ib + col + 64), b5 = Vector512.Load(ib + col + 80),
                b6 = Vector512.Load(ib + col + 96), b7 = Vector512.Load(ib + col + 112);
            Vector512<float> c0 = Vector512.Load(ic + col), c1 = Vector512.Load(ic + col + 16), c2 = Vector512.Load(ic + col + 32),
                c3 = Vector512.Load(ic + col + 48), c4 = Vector512.Load(ic + col + 64), c5 = Vector512.Load(ic + col + 80),
                c6 = Vector512.Load(ic + col + 96), c7 = Vector512.Load(ic + col + 112);
            for (int j = 0; j < count; j++)
            {
                long at = ((long)idx[j] * h) + col;
                float* ra = a + at, rb = b + at, rc = c + at;
                var wj = Vector512.Create(w[j]);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(ra), wj, a0);
                b0 = Vector512.FusedMultiplyAdd(Vector512.Load(rb), wj, b0);
                c0 = Vector512.FusedMultiplyAdd(Vector512.Load(rc), wj, c0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(ra + 16), wj, a1);
                b1 = Vector512.FusedMultiplyAdd(Vector512.Load(rb + 16), wj, b1);
                c1 = Vector512.FusedMultiplyAdd(Vector512.Load(rc + 16), wj, c1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Load(ra + 32), wj, a2);
                b2 = Vector512.FusedMultiplyAdd(Vector512.Load(rb + 32), wj, b2);
                c2 = Vector512.FusedMultiplyAdd(Vector512.Load(rc + 32), wj, c2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Load(ra + 48), wj, a3);
                b3 = Vector512.FusedMultiplyAdd(Vector512.Load(rb + 48), wj, b3);
                c3 = Vector512.FusedMultiplyAdd(Vector512.Load(rc + 48), wj, c3);
                a4 = Vector512.FusedMultiplyAdd(Vector512.Load(ra + 64), wj, a4);
                b4 = Vector512.FusedMultiplyAdd(Vector512.Load(rb + 64), wj, b4);
                c4 = Vector512.FusedMultiplyAdd(Vector512.Load(rc + 64), wj, c4);
                a5 = Vector512.FusedMultiplyAdd(Vector512.Load(ra + 80), wj, a5);
                b5 = Vector512.FusedMultiplyAdd(Vector512.Load(rb + 80), wj, b5);
                c5 = Vector512.FusedMultiplyAdd(Vector512.Load(rc + 80), wj, c5);
                a6 = Vector512.FusedMultiplyAdd(Vector512.Load(ra + 96), wj, a6);
                b6 = Vector512.FusedMultiplyAdd(Vector512.Load(rb + 96), wj, b6);
                c6 = Vector512.FusedMultiplyAdd(Vector512.Load(rc + 96), wj, c6);
                a7 = Vector512.FusedMultiplyAdd(Vector512.Load(ra + 112), wj, a7);
                b7 = Vector512.FusedMultiplyAdd(Vector512.Load(rb + 112), wj, b7);
                c7 = Vector512.FusedMultiplyAdd(Vector512.Load(rc + 112), wj, c7);
            }
            float* o = da + col;
            a0.Store(o); a1.Store(o + 16); a2.Store(o + 32); a3.Store(o + 48); a4.Store(o + 64); a5.Store(o + 80); a6.Store(o + 96); a7.Store(o + 112);
            o = db + col;
            b0.Store(o); b1.Store(o + 16); b2.Store(o + 32); b3.Store(o + 48); b4.Store(o + 64); b5.Store(o + 80); b6.Store(o + 96); b7.Store(o + 112);
            o = dc + col;
            c0.Store(o); c1.Store(o + 16); c2.Store(o + 32); c3.Store(o + 48); c4.Store(o + 64); c5.Store(o + 80); c6.Store(o + 96); c7.Store(o + 112);
        }
    }

    /// <summary>
    /// dst = init + Σ_j w[j] · t[idx[j], :] over a bf16 table copy (<see cref="Bf16Matrix"/>), each value widened to fp32
    /// in registers and accumulated in fp32 (the bias added last): half the bytes of <see cref="BagSum"/>. With AVX-512, 128
    /// columns at a time as 4 pairs of registers (even columns by a shift, odd by a mask, as <see cref="Bf16Gather"/>),
    /// then 32 at a time, so the 160-wide ML₁ row needs no scalar tail. With <paramref name="ahead"/> &gt; 0 the first pass also asks
    /// for the whole row that many hits ahead into L2, reading entries of <paramref name="idx"/> below <paramref name="visible"/> (past
    /// <paramref name="count"/>: the next token's rows), as <see cref="RowKernels.WeightedBagSumPrefetched"/> does: a hint, the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BagSumBf16(ushort* t, int h, int* idx, float* w, int count, float* dst, float* init, int ahead = 0, int visible = 0)
    {
        if (!Avx512F.IsSupported)
        {
            Bf16Gather.WeightedBagSum(t, h, idx, w, count, dst, 256);
            RowKernels.Add(init, dst, h);
            return;
        }
        var high = Vector512.Create(0xFFFF0000u);
        var lower = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        var upper = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        int c = 0, rowBytes = h * sizeof(ushort);
        for (; c + 128 <= h; c += 128)
        {
            Vector512<float> e0 = Vector512<float>.Zero, e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
            int limit = c == 0 && ahead > 0 && Sse.IsSupported ? visible - ahead : 0;   // rows to prefetch: first pass only
            for (int j = 0; j < count; j++)
            {
                if (j < limit)
                    RowKernels.PrefetchRow((byte*)(t + ((long)idx[j + ahead] * h)), rowBytes, l1: false);
                uint* r = (uint*)(t + ((long)idx[j] * h) + c);
                var wj = Vector512.Create(w[j]);
                Vector512<uint> p0 = Vector512.Load(r), p1 = Vector512.Load(r + 16), p2 = Vector512.Load(r + 32), p3 = Vector512.Load(r + 48);
                e0 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p0, 16).AsSingle(), wj, e0);
                o0 = Avx512F.FusedMultiplyAdd((p0 & high).AsSingle(), wj, o0);
                e1 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p1, 16).AsSingle(), wj, e1);
                o1 = Avx512F.FusedMultiplyAdd((p1 & high).AsSingle(), wj, o1);
                e2 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p2, 16).AsSingle(), wj, e2);
                o2 = Avx512F.FusedMultiplyAdd((p2 & high).AsSingle(), wj, o2);
                e3 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p3, 16).AsSingle(), wj, e3);
                o3 = Avx512F.FusedMultiplyAdd((p3 & high).AsSingle(), wj, o3);
            }
            StorePairBf16(e0, o0, lower, upper, init + c, dst + c);
            StorePairBf16(e1, o1, lower, upper, init + c + 32, dst + c + 32);
            StorePairBf16(e2, o2, lower, upper, init + c + 64, dst + c + 64);
            StorePairBf16(e3, o3, lower, upper, init + c + 96, dst + c + 96);
        }
        for (; c + 32 <= h; c += 32)
        {
            Vector512<float> e = Vector512<float>.Zero, o = e;
            for (int j = 0; j < count; j++)
            {
                var p = Vector512.Load((uint*)(t + ((long)idx[j] * h) + c));
                var wj = Vector512.Create(w[j]);
                e = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p, 16).AsSingle(), wj, e);
                o = Avx512F.FusedMultiplyAdd((p & high).AsSingle(), wj, o);
            }
            StorePairBf16(e, o, lower, upper, init + c, dst + c);
        }
        for (; c < h; c++)
        {
            float sum = 0f;
            for (int j = 0; j < count; j++)
                sum += w[j] * Bf16Matrix.ToFloat(t[((long)idx[j] * h) + c]);
            dst[c] = init[c] + sum;
        }
    }

    /// <summary>
    /// <see cref="BagSumBf16"/> of three bf16 table copies of one shape under one hash (Q, K and V) in one walk of the bag, 128
    /// columns of each at a time (24 accumulators of even and odd columns): the same FMA chains per column as
    /// <see cref="BagSumBf16"/>, so the same bits; h not a multiple of 128 (or no AVX-512) takes three <see cref="BagSumBf16"/> calls.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BagSum3Bf16(ushort* a, ushort* b, ushort* c, int h, int* idx, float* w, int count,
        float* da, float* db, float* dc, float* ia, float* ib, float* ic)
    {
        if (!Avx512F.IsSupported || h % 128 != 0)
        {
            BagSumBf16(a, h, idx, w, count, da, ia);
            BagSumBf16(b, h, idx, w, count, db, ib);
            BagSumBf16(c, h, idx, w, count, dc, ic);
            return;
        }
        var high = Vector512.Create(0xFFFF0000u);
        var lower = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        var upper = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        for (int col = 0; col < h; col += 128)
        {
            Vector512<float> ae0 = Vector512<float>.Zero, ae1 = ae0, ae2 = ae0, ae3 = ae0, ao0 = ae0, ao1 = ae0, ao2 = ae0, ao3 = ae0;
            Vector512<float> be0 = ae0, be1 = ae0, be2 = ae0, be3 = ae0, bo0 = ae0, bo1 = ae0, bo2 = ae0, bo3 = ae0;
            Vector512<float> ce0 = ae0, ce1 = ae0, ce2 = ae0, ce3 = ae0, co0 = ae0, co1 = ae0, co2 = ae0, co3 = ae0;
            for (int j = 0; j < count; j++)
            {
                long at = ((long)idx[j] * h) + col;
                uint* ra = (uint*)(a + at), rb = (uint*)(b + at), rc = (uint*)(c + at);
                var wj = Vector512.Create(w[j]);
                Step(Vector512.Load(ra), wj, high, ref ae0, ref ao0); Step(Vector512.Load(rb), wj, high, ref be0, ref bo0); Step(Vector512.Load(rc), wj, high, ref ce0, ref co0);
                Step(Vector512.Load(ra + 16), wj, high, ref ae1, ref ao1); Step(Vector512.Load(rb + 16), wj, high, ref be1, ref bo1); Step(Vector512.Load(rc + 16), wj, high, ref ce1, ref co1);
                Step(Vector512.Load(ra + 32), wj, high, ref ae2, ref ao2); Step(Vector512.Load(rb + 32), wj, high, ref be2, ref bo2); Step(Vector512.Load(rc + 32), wj, high, ref ce2, ref co2);
                Step(Vector512.Load(ra + 48), wj, high, ref ae3, ref ao3); Step(Vector512.Load(rb + 48), wj, high, ref be3, ref bo3); Step(Vector512.Load(rc + 48), wj, high, ref ce3, ref co3);
            }
            StorePairBf16(ae0, ao0, lower, upper, ia + col, da + col); StorePairBf16(ae1, ao1, lower, upper, ia + col + 32, da + col + 32);
            StorePairBf16(ae2, ao2, lower, upper, ia + col + 64, da + col + 64); StorePairBf16(ae3, ao3, lower, upper, ia + col + 96, da + col + 96);
            StorePairBf16(be0, bo0, lower, upper, ib + col, db + col); StorePairBf16(be1, bo1, lower, upper, ib + col + 32, db + col + 32);
            StorePairBf16(be2, bo2, lower, upper, ib + col + 64, db + col + 64); StorePairBf16(be3, bo3, lower, upper, ib + col + 96, db + col + 96);
            StorePairBf16(ce0, co0, lower, upper, ic + col, dc + col); StorePairBf16(ce1, co1, lower, upper, ic + col + 32, dc + col + 32);
            StorePairBf16(ce2, co2, lower, upper, ic + col + 64, dc + col + 64); StorePairBf16(ce3, co3, lower, upper, ic + col + 96, dc + col + 96);
        }
    }

    /// <summary>One bf16 pair step of <see cref="BagSumBf16"/>: even columns widened by a shift, odd by a mask, each FMA'd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector512<uint> p, Vector512<float> wj, Vector512<uint> high, ref Vector512<float> even, ref Vector512<float> odd)
    {
        even = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p, 16).AsSingle(), wj, even);
        odd = Avx512F.FusedMultiplyAdd((p & high).AsSingle(), wj, odd);
    }

    /// <summary>Interleaves even- and odd-column sums back into 32 columns and adds the bias.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StorePairBf16(Vector512<float> even, Vector512<float> odd, Vector512<int> lower, Vector512<int> upper, float* init, float* dst)
    {
        (Avx512F.PermuteVar16x32x2(even, lower, odd) + Vector512.Load(init)).Store(dst);
        (Avx512F.PermuteVar16x32x2(even, upper, odd) + Vector512.Load(init + 16)).Store(dst + 16);
    }
}
