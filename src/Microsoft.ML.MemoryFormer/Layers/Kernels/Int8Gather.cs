using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The Memory Layer gather of the fused decode step over an int8 row-wise table (<see cref="Int8Matrix"/>):
/// dst = Σ_j w_j · s[idx_j] · q[idx_j], the row's scale folded into its hash weight, each int8 value widened to fp32 in
/// registers and accumulated in fp32 — a quarter of the bytes of the fp32 gather (<c>RowKernels.WeightedBagSum</c>).
/// </summary>
internal static unsafe class Int8Gather
{
    /// <summary>Columns one pass of the AVX-512 path keeps in registers (8 accumulators of 16).</summary>
    private const int Tile512 = 128;

    /// <summary>Columns one pass of the AVX2 path keeps in registers (8 accumulators of 8).</summary>
    private const int Tile256 = 64;

    /// <summary>Rows ahead whose whole int8 row the first column pass prefetches: the rows are scattered, so the hardware
    /// prefetcher cannot guess them, and one pass reads only 64–128 bytes of each.</summary>
    private const int PrefetchAhead = 8;

    /// <summary>dst [h] = Σ_j w[j] · s[idx[j]] · q[idx[j]] over <paramref name="count"/> rows of width <paramref name="h"/>;
    /// <paramref name="vectorBits"/> is the widest path to take, 512, 256 or 0 (scalar): <see cref="HeadGemv.VectorBits"/> in
    /// production, each supported one in the tests.</summary>
    public static void WeightedBagSum(sbyte* q, float* scales, int h, int* idx, float* w, int count, float* dst, int vectorBits) =>
        WeightedBagSum(q, scales, h, idx, w, count, dst, vectorBits, 0, h);

    /// <summary>Columns <paramref name="first"/> … <paramref name="last"/>−1 of
    /// <see cref="WeightedBagSum(sbyte*, float*, int, int*, float*, int, float*, int)"/> (dst indexed by column, rows
    /// <paramref name="h"/> wide), so that two threads can share one gather with the same arithmetic as one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WeightedBagSum(sbyte* q, float* scales, int h, int* idx, float* w, int count, float* dst, int vectorBits, int first, int last)
    {
        // The first rows' prefetches go out before the scales are read: each scale is a scattered read too, and the
        // rows' misses then overlap it instead of waiting behind it.
        if (Sse.IsSupported)
            for (int j = 0; j < Math.Min(count, PrefetchAhead); j++)
                PrefetchRow(q + ((long)idx[j] * h) + first, last - first);
        float* weights = stackalloc float[count];
        for (int j = 0; j < count; j++)
            weights[j] = w[j] * scales[idx[j]];
        int c = first;
        if (vectorBits >= 512 && Avx512F.IsSupported)
        {
            for (; c + Tile512 <= last; c += Tile512)
            {
                Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
                for (int j = 0; j < count; j++)
                {
                    sbyte* r = q + ((long)idx[j] * h) + c;
                    if (c == first && j + PrefetchAhead < count)
                        PrefetchRow(q + ((long)idx[j + PrefetchAhead] * h) + first, last - first);
                    var wj = Vector512.Create(weights[j]);
                    a0 = Avx512F.FusedMultiplyAdd(HeadGemv.Widen(r), wj, a0);
                    a1 = Avx512F.FusedMultiplyAdd(HeadGemv.Widen(r + 16), wj, a1);
                    a2 = Avx512F.FusedMultiplyAdd(HeadGemv.Widen(r + 32), wj, a2);
                    a3 = Avx512F.FusedMultiplyAdd(HeadGemv.Widen(r + 48), wj, a3);
                    a4 = Avx512F.FusedMultiplyAdd(HeadGemv.Widen(r + 64), wj, a4);
                    a5 = Avx512F.FusedMultiplyAdd(HeadGemv.Widen(r + 80), wj, a5);
                    a6 = Avx512F.FusedMultiplyAdd(HeadGemv.Widen(r + 96), wj, a6);
                    a7 = Avx512F.FusedMultiplyAdd(HeadGemv.Widen(r + 112), wj, a7);
                }
                a0.Store(dst + c);
                a1.Store(dst + c + 16);
                a2.Store(dst + c + 32);
                a3.Store(dst + c + 48);
                a4.Store(dst + c + 64);
                a5.Store(dst + c + 80);
                a6.Store(dst + c + 96);
                a7.Store(dst + c + 112);
            }
        }
        if (vectorBits >= 256 && Avx2.IsSupported && Fma.IsSupported)
        {
            for (; c + Tile256 <= last; c += Tile256)
            {
                Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
                for (int j = 0; j < count; j++)
                {
                    sbyte* r = q + ((long)idx[j] * h) + c;
                    if (c == first && j + PrefetchAhead < count)
                        PrefetchRow(q + ((long)idx[j + PrefetchAhead] * h) + first, last - first);
                    var wj = Vector256.Create(weights[j]);
                    a0 = Fma.MultiplyAdd(HeadGemv.Widen256(r), wj, a0);
                    a1 = Fma.MultiplyAdd(HeadGemv.Widen256(r + 8), wj, a1);
                    a2 = Fma.MultiplyAdd(HeadGemv.Widen256(r + 16), wj, a2);
                    a3 = Fma.MultiplyAdd(HeadGemv.Widen256(r + 24), wj, a3);
                    a4 = Fma.MultiplyAdd(HeadGemv.Widen256(r + 32), wj, a4);
                    a5 = Fma.MultiplyAdd(HeadGemv.Widen256(r + 40), wj, a5);
                    a6 = Fma.MultiplyAdd(HeadGemv.Widen256(r + 48), wj, a6);
                    a7 = Fma.MultiplyAdd(HeadGemv.Widen256(r + 56), wj, a7);
                }
                a0.Store(dst + c);
                a1.Store(dst + c + 8);
                a2.Store(dst + c + 16);
                a3.Store(dst + c + 24);
                a4.Store(dst + c + 32);
                a5.Store(dst + c + 40);
                a6.Store(dst + c + 48);
                a7.Store(dst + c + 56);
            }
        }
        for (; c < last; c++)
        {
            float sum = 0f;
            for (int j = 0; j < count; j++)
                sum += weights[j] * q[((long)idx[j] * h) + c];
            dst[c] = sum;
        }
    }

    /// <summary>Hints every cache line of one row into L2 (<c>prefetcht1</c>, <see cref="KernelSettings.DecodePrefetchIntoL2"/>, the
    /// default: 1.2–1.7× faster blocks than into L1, docs/benchmarks.md) or L1 (<c>prefetcht0</c>): harmless if already there.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRow(sbyte* row, int h) =>
        RowKernels.PrefetchRow((byte*)row, h * sizeof(sbyte), l1: !KernelSettings.Current.DecodePrefetchIntoL2);
}
