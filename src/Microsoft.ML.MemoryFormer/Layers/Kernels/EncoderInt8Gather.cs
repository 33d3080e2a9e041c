using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The fused scoring encoder's Memory Layer gather over an int8 row-wise table copy (<see cref="Int8Matrix"/>, opt-in
/// <c>TextClassifierModel.UseInferencePrecision(Int8)</c>): dst = init + Σ_j w_j · s[idx_j] · q[idx_j], a quarter of the
/// bytes of the fp32 gather (<see cref="EncoderKernels.BagSum"/>). Each row's scale is folded into its hash weight, the
/// int8 values are widened to fp32 in registers (<see cref="HeadGemv.Widen(sbyte*)"/>) and accumulated in fp32 from the
/// bias, the whole output row in AVX-512 registers (128 columns, then 32 at a time: the 160-wide ML₁ row has no scalar tail).
/// </summary>
internal static unsafe class EncoderInt8Gather
{
    /// <summary>dst [h] = init + Σ_j w[j] · scales[idx[j]] · q[idx[j]] over <paramref name="count"/> rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BagSum(sbyte* q, float* scales, int h, int* idx, float* w, int count, float* dst, float* init)
    {
        if (!Avx512F.IsSupported || h % 32 != 0)
        {
            Int8Gather.WeightedBagSum(q, scales, h, idx, w, count, dst, 256);
            RowKernels.Add(init, dst, h);
            return;
        }
        float* weights = stackalloc float[count];
        for (int j = 0; j < count; j++)
            weights[j] = w[j] * scales[idx[j]];
        int c = 0;
        for (; c + 128 <= h; c += 128)
        {
            Vector512<float> a0 = Vector512.Load(init + c), a1 = Vector512.Load(init + c + 16), a2 = Vector512.Load(init + c + 32),
                a3 = Vector512.Load(init + c + 48), a4 = Vector512.Load(init + c + 64), a5 = Vector512.Load(init + c + 80),
                a6 = Vector512.Load(init + c + 96), a7 = Vector512.Load(init + c + 112);
            for (int j = 0; j < count; j++)
            {
                sbyte* r = q + ((long)idx[j] * h) + c;
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
            float* d = dst + c;
            a0.Store(d); a1.Store(d + 16); a2.Store(d + 32); a3.Store(d + 48);
            a4.Store(d + 64); a5.Store(d + 80); a6.Store(d + 96); a7.Store(d + 112);
        }
        for (; c < h; c += 32)
        {
            Vector512<float> a0 = Vector512.Load(init + c), a1 = Vector512.Load(init + c + 16);
            for (int j = 0; j < count; j++)
            {
                sbyte* r = q + ((long)idx[j] * h) + c;
                var wj = Vector512.Create(weights[j]);
                a0 = Avx512F.FusedMultiplyAdd(HeadGemv.Widen(r), wj, a0);
                a1 = Avx512F.FusedMultiplyAdd(HeadGemv.Widen(r + 16), wj, a1);
            }
            a0.Store(dst + c); a1.Store(dst + c + 16);
        }
    }
}
