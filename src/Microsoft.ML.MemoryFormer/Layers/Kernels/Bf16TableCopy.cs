using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// A Memory Layer's bf16 copy of its fp32 table [R, h], row-major (<see cref="Bf16Matrix"/>'s layout), that the training
/// forward reads instead of the table (<see cref="KernelSettings.Bf16ForwardTables"/>): mixed precision, fp32 master table
/// updated by the optimizer, half the bytes for the gather, fp32 accumulation. Each value is the table's rounded to the
/// nearest bf16, ties to even (<see cref="Bf16Matrix.Round"/>).
/// </summary>
/// <remarks>
/// <para>Never stale (<see cref="KeptTableCopy"/>; the reference path, too, bumps the table's version counter).
/// The fused table update (<see cref="TableGradientPass.UpdateAll"/>) writes each updated row's copy in the same pass, so
/// the copy stays current without a bump; every other raw write of a table by this library bumps the counter
/// (<c>Training/FusedAdamW.cs</c>, the weight loaders); the blocked update, which writes the table inside the backward,
/// marks the copy stale with <see cref="KeptTableCopy.Invalidate"/> instead.</para>
/// <para>Where the version counter cannot be read (<see cref="TableVersion.IsAvailable"/>) no copy is made and the forward
/// reads the fp32 table.</para>
/// </remarks>
internal sealed unsafe class Bf16TableCopy : KeptTableCopy
{
    /// <summary>Whether the layer's training forward reads this copy even with <see cref="KernelSettings.Bf16ForwardTables"/> off: set
    /// for the duration of a run by the optimizer of a training with <c>TrainingOptions.MixedPrecisionTables</c>.</summary>
    public bool Requested { get; set; }

    /// <summary>The copy's first value (valid after <see cref="KeptTableCopy.Sync"/> returned non-zero).</summary>
    public ushort* Pointer => (ushort*)Values;

    protected override long BytesFor(long rowCount, int h) => rowCount * h * sizeof(ushort);

    protected override void Fill(Tensor table, long rowCount, int h, byte* destination)
    {
        nint src = (nint)TensorMemory.Floats(table), dst = (nint)destination;
        KernelParallel.For((int)rowCount, h, (start, end) =>
        {
            for (long r = start; r < end; r++)
                WriteRow((float*)src + (r * h), (ushort*)dst + (r * h), h);
        });
    }

    /// <summary>dst[0..h) = bf16(src[0..h)), round to nearest, ties to even (NaN stays NaN): one row of the copy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WriteRow(float* src, ushort* dst, int h)
    {
        int c = 0;
        if (Avx512F.IsSupported)
            for (; c + 16 <= h; c += 16)
                Avx512F.ConvertToVector256UInt16(Bf16GradientRows.Round(Vector512.Load(src + c)) >> 16).Store(dst + c);
        for (; c < h; c++)
            dst[c] = Bf16Matrix.Round(src[c]);
    }

    /// <summary>dst[0..h) = src's values rounded to bf16, as fp32 (what the copy holds, for the weight gradient's inner products).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RoundRow(float* src, float* dst, int h)
    {
        int c = 0;
        if (Avx512F.IsSupported)
            for (; c + 16 <= h; c += 16)
                (Bf16GradientRows.Round(Vector512.Load(src + c)) & Vector512.Create(0xFFFF0000u)).AsSingle().Store(dst + c);
        for (; c < h; c++)
            dst[c] = Bf16Matrix.ToFloat(Bf16Matrix.Round(src[c]));
    }

    /// <summary>dst[0..h) = the bf16 row src widened to fp32 (exact): <see cref="RoundRow"/>'s values where src is the copy's row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WidenRow(ushort* src, float* dst, int h)
    {
        int c = 0;
        if (Avx512F.IsSupported)
            for (; c + 16 <= h; c += 16)
                Widen(src + c).Store(dst + c);
        for (; c < h; c++)
            dst[c] = Bf16Matrix.ToFloat(src[c]);
    }

    /// <summary>Σ_i a[i] · b[i] over <paramref name="h"/> columns, a fp32 and b a bf16 row, accumulated in fp32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot(float* a, ushort* b, int h)
    {
        int c = 0;
        float sum = 0f;
        if (Avx512F.IsSupported)
        {
            Vector512<float> s0 = Vector512<float>.Zero, s1 = s0;
            for (; c + 32 <= h; c += 32)
            {
                s0 = Avx512F.FusedMultiplyAdd(Vector512.Load(a + c), Widen(b + c), s0);
                s1 = Avx512F.FusedMultiplyAdd(Vector512.Load(a + c + 16), Widen(b + c + 16), s1);
            }
            for (; c + 16 <= h; c += 16)
                s0 = Avx512F.FusedMultiplyAdd(Vector512.Load(a + c), Widen(b + c), s0);
            sum = Vector512.Sum(s0 + s1);
        }
        for (; c < h; c++)
            sum += a[c] * Bf16Matrix.ToFloat(b[c]);
        return sum;
    }

    /// <summary>16 bf16 → 16 fp32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Widen(ushort* p) => (Avx512F.ConvertToVector512UInt32(Vector256.Load(p)) << 16).AsSingle();
}
