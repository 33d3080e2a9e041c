using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The two inner loops of the Memory Layer on the CPU, over raw fp32 rows of width <c>h</c>:
/// a weighted bag sum <c>dst = Σ_j w[j] · src[idx[j], :]</c> (the forward gather, and the table gradient once
/// the hits are sorted by row), and a dot product (the weight gradient).
/// </summary>
/// <remarks>
/// The bag sum keeps a 64-column tile of the output in eight AVX registers while it walks the whole bag, so each
/// output value is written once per token instead of once per chunk (the naive kernel that re-read and re-wrote
/// the output row per chunk was several times slower than EmbeddingBag). With AVX-512 the tile is 256 columns in
/// sixteen registers. <see cref="WeightedBagSumPrefetched"/> asks for whole rows a few hits ahead into L2 (into L1 it had
/// shown no gain; a row-at-a-time loop with the output row in L1 was not faster either). Without 256-bit hardware it falls back to <see cref="Vector{T}"/> with the
/// same structure. Accumulation is fp32 (the official fp16 CUDA kernel accumulates in half precision).
/// </remarks>
internal static unsafe class RowKernels
{
    private const int Tile = 64;
    private const int Tile512 = 256;


    /// <summary>
    /// <c>dst = init + Σ_j w[j] · src[idx[j], :]</c> over <paramref name="h"/> columns, with <paramref name="init"/> (a
    /// row of <paramref name="h"/> floats, e.g. the layer's bias) taken as zeros when null.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WeightedBagSum(float* src, int h, int* idx, float* w, int count, float* dst, float* init = null)
    {
        if (Vector512.IsHardwareAccelerated && h >= Tile512)
            WeightedBagSum512(src, h, idx, w, count, dst, init);
        else if (Vector256.IsHardwareAccelerated)
            WeightedBagSum256(src, h, idx, w, count, dst, init);
        else
            WeightedBagSumVector(src, h, idx, w, count, dst, init);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Start512(float* init, int c) => init is null ? Vector512<float>.Zero : Vector512.Load(init + c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Start256(float* init, int c) => init is null ? Vector256<float>.Zero : Vector256.Load(init + c);

    /// <summary>dst[i] += src[i] over <paramref name="h"/> floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Add(float* src, float* dst, int h)
    {
        int c = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; c + 8 <= h; c += 8)
                (Vector256.Load(dst + c) + Vector256.Load(src + c)).Store(dst + c);
        }
        for (; c < h; c++)
            dst[c] += src[c];
    }

    /// <summary>Σ_i a[i] · b[i] over <paramref name="h"/> floats, accumulated in fp32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot(float* a, float* b, int h)
    {
        int c = 0;
        float sum = 0f;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            for (; c + 32 <= h; c += 32)
            {
                s0 = MulAdd(Vector256.Load(a + c), Vector256.Load(b + c), s0);
                s1 = MulAdd(Vector256.Load(a + c + 8), Vector256.Load(b + c + 8), s1);
                s2 = MulAdd(Vector256.Load(a + c + 16), Vector256.Load(b + c + 16), s2);
                s3 = MulAdd(Vector256.Load(a + c + 24), Vector256.Load(b + c + 24), s3);
            }
            for (; c + 8 <= h; c += 8)
                s0 = MulAdd(Vector256.Load(a + c), Vector256.Load(b + c), s0);
            sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector.IsHardwareAccelerated)
        {
            int width = Vector<float>.Count;
            var s = Vector<float>.Zero;
            for (; c + width <= h; c += width)
                s += Vector.Load(a + c) * Vector.Load(b + c);
            sum = Vector.Sum(s);
        }
        for (; c < h; c++)
            sum += a[c] * b[c];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MulAdd(Vector256<float> a, Vector256<float> b, Vector256<float> acc)
    {
        return Fma.IsSupported ? Fma.MultiplyAdd(a, b, acc) : (a * b) + acc;
    }


    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Mul512(Vector512<float> a, Vector512<float> b, Vector512<float> acc)
    {
        return Avx512F.IsSupported ? Avx512F.FusedMultiplyAdd(a, b, acc) : (a * b) + acc;
    }

    /// <summary>AVX-512: a 256-column tile in sixteen of the 32 registers, so h = 512 takes two passes per token.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedBagSum512(float* src, int h, int* idx, float* w, int count, float* dst, float* init, int ahead = 0, int visible = 0)
    {
        int c = 0, rowBytes = h * sizeof(float);
        bool l1 = PrefetchIntoL1;
        for (; c + Tile512 <= h; c += Tile512)
        {
            Vector512<float> a0 = Start512(init, c), a1 = Start512(init, c + 16), a2 = Start512(init, c + 32), a3 = Start512(init, c + 48),
                a4 = Start512(init, c + 64), a5 = Start512(init, c + 80), a6 = Start512(init, c + 96), a7 = Start512(init, c + 112),
                a8 = Start512(init, c + 128), a9 = Start512(init, c + 144), a10 = Start512(init, c + 160), a11 = Start512(init, c + 176),
                a12 = Start512(init, c + 192), a13 = Start512(init, c + 208), a14 = Start512(init, c + 224), a15 = Start512(init, c + 240);
            int limit = c == 0 && ahead > 0 ? visible - ahead : 0;       // rows to prefetch: first pass only
            for (int j = 0; j < count; j++)
            {
                if (j < limit)
                    PrefetchRow((byte*)(src + ((long)idx[j + ahead] * h)), rowBytes, l1);
                float* r = src + ((long)idx[j] * h) + c;
                var wj = Vector512.Create(w[j]);
                a0 = Mul512(Vector512.Load(r + 0), wj, a0);
                a1 = Mul512(Vector512.Load(r + 16), wj, a1);
                a2 = Mul512(Vector512.Load(r + 32), wj, a2);
                a3 = Mul512(Vector512.Load(r + 48), wj, a3);
                a4 = Mul512(Vector512.Load(r + 64), wj, a4);
                a5 = Mul512(Vector512.Load(r + 80), wj, a5);
                a6 = Mul512(Vector512.Load(r + 96), wj, a6);
                a7 = Mul512(Vector512.Load(r + 112), wj, a7);
                a8 = Mul512(Vector512.Load(r + 128), wj, a8);
                a9 = Mul512(Vector512.Load(r + 144), wj, a9);
                a10 = Mul512(Vector512.Load(r + 160), wj, a10);
                a11 = Mul512(Vector512.Load(r + 176), wj, a11);
                a12 = Mul512(Vector512.Load(r + 192), wj, a12);
                a13 = Mul512(Vector512.Load(r + 208), wj, a13);
                a14 = Mul512(Vector512.Load(r + 224), wj, a14);
                a15 = Mul512(Vector512.Load(r + 240), wj, a15);
            }
            float* d = dst + c;
            a0.Store(d + 0);
            a1.Store(d + 16);
            a2.Store(d + 32);
            a3.Store(d + 48);
            a4.Store(d + 64);
            a5.Store(d + 80);
            a6.Store(d + 96);
            a7.Store(d + 112);
            a8.Store(d + 128);
            a9.Store(d + 144);
            a10.Store(d + 160);
            a11.Store(d + 176);
            a12.Store(d + 192);
            a13.Store(d + 208);
            a14.Store(d + 224);
            a15.Store(d + 240);
        }
        if (c < h)
            WeightedBagSum256(src, h, idx, w, count, dst, init, c);
    }

    /// <summary>Hits ahead whose whole row <see cref="WeightedBagSumPrefetched"/> asks for (<c>perf probe-gather-prefetch</c>: 8 and 16
    /// alike, 4 a little slower).</summary>
    public const int GatherPrefetchAhead = 8;

    /// <summary>Whether <see cref="WeightedBagSumPrefetched"/> prefetches into L1 (<c>prefetcht0</c>) instead of L2; a probe knob:
    /// into L1 it gained little or nothing (<c>perf probe-gather-prefetch</c>).</summary>
    internal static bool PrefetchIntoL1 { get; set; }

    /// <summary>
    /// <see cref="WeightedBagSum"/> that also asks for the whole row <paramref name="ahead"/> hits ahead into L2 (<c>prefetcht1</c>)
    /// during its first column pass: entries of <paramref name="idx"/> below <paramref name="visible"/> (≥ <paramref name="count"/>;
    /// past count, the next token's rows) are read for that. The rows are scattered, so the hardware prefetcher cannot guess them,
    /// and with AVX-512 a 512-wide row is read in two passes of 256 columns, the second from L2. Same bits (a hint only); widths
    /// below 256 or no AVX-512 run <see cref="WeightedBagSum"/> as it is.
    /// </summary>
    public static void WeightedBagSumPrefetched(float* src, int h, int* idx, float* w, int count, float* dst, float* init, int ahead, int visible)
    {
        if (Vector512.IsHardwareAccelerated && Sse.IsSupported && h >= Tile512)
            WeightedBagSum512(src, h, idx, w, count, dst, init, ahead, visible);
        else
            WeightedBagSum(src, h, idx, w, count, dst, init);
    }

    /// <summary>Every 64-byte line of a row of <paramref name="bytes"/>, into L2 (or L1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void PrefetchRow(byte* p, int bytes, bool l1)
    {
        if (l1)
        {
            for (int l = 0; l < bytes; l += 64)
                Sse.Prefetch0(p + l);
            return;
        }
        for (int l = 0; l < bytes; l += 64)
            Sse.Prefetch1(p + l);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedBagSum256(float* src, int h, int* idx, float* w, int count, float* dst, float* init, int c = 0)
    {
        for (; c + Tile <= h; c += Tile)
        {
            Vector256<float> a0 = Start256(init, c), a1 = Start256(init, c + 8), a2 = Start256(init, c + 16), a3 = Start256(init, c + 24),
                a4 = Start256(init, c + 32), a5 = Start256(init, c + 40), a6 = Start256(init, c + 48), a7 = Start256(init, c + 56);
            for (int j = 0; j < count; j++)
            {
                float* r = src + ((long)idx[j] * h) + c;
                var wj = Vector256.Create(w[j]);
                a0 = MulAdd(Vector256.Load(r), wj, a0);
                a1 = MulAdd(Vector256.Load(r + 8), wj, a1);
                a2 = MulAdd(Vector256.Load(r + 16), wj, a2);
                a3 = MulAdd(Vector256.Load(r + 24), wj, a3);
                a4 = MulAdd(Vector256.Load(r + 32), wj, a4);
                a5 = MulAdd(Vector256.Load(r + 40), wj, a5);
                a6 = MulAdd(Vector256.Load(r + 48), wj, a6);
                a7 = MulAdd(Vector256.Load(r + 56), wj, a7);
            }
            float* d = dst + c;
            a0.Store(d);
            a1.Store(d + 8);
            a2.Store(d + 16);
            a3.Store(d + 24);
            a4.Store(d + 32);
            a5.Store(d + 40);
            a6.Store(d + 48);
            a7.Store(d + 56);
        }
        for (; c + 8 <= h; c += 8)
        {
            var a = Start256(init, c);
            for (int j = 0; j < count; j++)
                a = MulAdd(Vector256.Load(src + ((long)idx[j] * h) + c), Vector256.Create(w[j]), a);
            a.Store(dst + c);
        }
        ScalarTail(src, h, idx, w, count, dst, init, c);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedBagSumVector(float* src, int h, int* idx, float* w, int count, float* dst, float* init)
    {
        int c = 0;
        int width = Vector<float>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            for (; c + (4 * width) <= h; c += 4 * width)
            {
                Vector<float> a0 = StartVector(init, c), a1 = StartVector(init, c + width), a2 = StartVector(init, c + (2 * width)),
                    a3 = StartVector(init, c + (3 * width));
                for (int j = 0; j < count; j++)
                {
                    float* r = src + ((long)idx[j] * h) + c;
                    var wj = new Vector<float>(w[j]);
                    a0 += Vector.Load(r) * wj;
                    a1 += Vector.Load(r + width) * wj;
                    a2 += Vector.Load(r + (2 * width)) * wj;
                    a3 += Vector.Load(r + (3 * width)) * wj;
                }
                a0.Store(dst + c);
                a1.Store(dst + c + width);
                a2.Store(dst + c + (2 * width));
                a3.Store(dst + c + (3 * width));
            }
        }
        ScalarTail(src, h, idx, w, count, dst, init, c);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> StartVector(float* init, int c) => init is null ? Vector<float>.Zero : Vector.Load(init + c);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScalarTail(float* src, int h, int* idx, float* w, int count, float* dst, float* init, int c)
    {
        for (; c < h; c++)
        {
            float a = init is null ? 0f : init[c];
            for (int j = 0; j < count; j++)
                a += w[j] * src[((long)idx[j] * h) + c];
            dst[c] = a;
        }
    }
}
