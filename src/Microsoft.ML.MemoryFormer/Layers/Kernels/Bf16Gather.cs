using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The Memory Layer gather of the fused decode step over a bf16 table (<see cref="Bf16Matrix"/>): dst = Σ_j w_j · t[idx_j],
/// each bf16 value widened to fp32 in registers and accumulated in fp32 — half the bytes of the fp32 gather
/// (<c>RowKernels.WeightedBagSum</c>), the same arithmetic on the rounded table.
/// </summary>
/// <remarks>
/// The AVX-512 path loads 32 bf16 values as 16 pairs and widens them with a shift (even columns) and a mask (odd
/// columns) into separate accumulators, interleaved back once per tile (as <see cref="HeadGemv"/>'s bf16 kernel); the
/// scattered rows are prefetched whole, a few rows ahead, on the first column pass (as <see cref="Int8Gather"/>).
/// </remarks>
internal static unsafe class Bf16Gather
{
    /// <summary>Columns one pass of the AVX-512 path keeps in registers (4 pairs of accumulators of 16).</summary>
    private const int Tile512 = 128;

    /// <summary>Columns one pass of the AVX2 path keeps in registers (8 accumulators of 8).</summary>
    private const int Tile256 = 64;

    /// <summary>Rows ahead whose whole row the first column pass prefetches: the rows are scattered, so the hardware
    /// prefetcher cannot guess them, and one pass reads only 128–256 bytes of each.</summary>
    private const int PrefetchAhead = 8;

    /// <summary>dst [h] = Σ_j w[j] · t[idx[j]] over <paramref name="count"/> bf16 rows of width <paramref name="h"/>;
    /// <paramref name="vectorBits"/> is the widest path to take, 512, 256 or 0 (scalar): <see cref="HeadGemv.VectorBits"/> in
    /// production, each supported one in the tests.</summary>
    public static void WeightedBagSum(ushort* t, int h, int* idx, float* w, int count, float* dst, int vectorBits) =>
        WeightedBagSum(t, h, idx, w, count, dst, vectorBits, 0, h);

    /// <summary>Columns <paramref name="first"/> … <paramref name="last"/>−1 of <see cref="WeightedBagSum(ushort*, int, int*, float*, int, float*, int)"/>
    /// (dst indexed by column, rows <paramref name="h"/> wide), so that two threads can share one gather with the same
    /// arithmetic as one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WeightedBagSum(ushort* t, int h, int* idx, float* w, int count, float* dst, int vectorBits, int first, int last)
    {
        if (Sse.IsSupported)
            for (int j = 0; j < Math.Min(count, PrefetchAhead); j++)
                PrefetchRow(t + ((long)idx[j] * h) + first, last - first);
        int c = first;
        if (vectorBits >= 512 && Avx512F.IsSupported)
        {
            var high = Vector512.Create(0xFFFF0000u);
            // vpermt2ps indices: output lane 2i ← even[i], 2i+1 ← odd[i] (odd = second operand, lanes 16…31)
            var lower = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            var upper = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            for (; c + Tile512 <= last; c += Tile512)
            {
                Vector512<float> e0 = Vector512<float>.Zero, e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
                for (int j = 0; j < count; j++)
                {
                    uint* r = (uint*)(t + ((long)idx[j] * h) + c);
                    if (c == first && j + PrefetchAhead < count)
                        PrefetchRow(t + ((long)idx[j + PrefetchAhead] * h) + first, last - first);
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
                float* d = dst + c;
                Avx512F.PermuteVar16x32x2(e0, lower, o0).Store(d);
                Avx512F.PermuteVar16x32x2(e0, upper, o0).Store(d + 16);
                Avx512F.PermuteVar16x32x2(e1, lower, o1).Store(d + 32);
                Avx512F.PermuteVar16x32x2(e1, upper, o1).Store(d + 48);
                Avx512F.PermuteVar16x32x2(e2, lower, o2).Store(d + 64);
                Avx512F.PermuteVar16x32x2(e2, upper, o2).Store(d + 80);
                Avx512F.PermuteVar16x32x2(e3, lower, o3).Store(d + 96);
                Avx512F.PermuteVar16x32x2(e3, upper, o3).Store(d + 112);
            }
        }
        if (vectorBits >= 256 && Avx2.IsSupported && Fma.IsSupported)
        {
            for (; c + Tile256 <= last; c += Tile256)
            {
                Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
                for (int j = 0; j < count; j++)
                {
                    ushort* r = t + ((long)idx[j] * h) + c;
                    if (c == first && j + PrefetchAhead < count)
                        PrefetchRow(t + ((long)idx[j + PrefetchAhead] * h) + first, last - first);
                    var wj = Vector256.Create(w[j]);
                    a0 = Fma.MultiplyAdd(Widen256(r), wj, a0);
                    a1 = Fma.MultiplyAdd(Widen256(r + 8), wj, a1);
                    a2 = Fma.MultiplyAdd(Widen256(r + 16), wj, a2);
                    a3 = Fma.MultiplyAdd(Widen256(r + 24), wj, a3);
                    a4 = Fma.MultiplyAdd(Widen256(r + 32), wj, a4);
                    a5 = Fma.MultiplyAdd(Widen256(r + 40), wj, a5);
                    a6 = Fma.MultiplyAdd(Widen256(r + 48), wj, a6);
                    a7 = Fma.MultiplyAdd(Widen256(r + 56), wj, a7);
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
                sum += w[j] * Bf16Matrix.ToFloat(t[((long)idx[j] * h) + c]);
            dst[c] = sum;
        }
    }

    /// <summary>8 bf16 → 8 fp32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Widen256(ushort* p) => Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();

    /// <summary>Hints every cache line of one row into L2 (<c>prefetcht1</c>, <see cref="KernelSettings.DecodePrefetchIntoL2"/>, the
    /// default: 1.2–1.7× faster blocks than into L1, docs/benchmarks.md) or L1 (<c>prefetcht0</c>): harmless if already there.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRow(ushort* row, int h) =>
        RowKernels.PrefetchRow((byte*)row, h * sizeof(ushort), l1: !KernelSettings.Current.DecodePrefetchIntoL2);
}
