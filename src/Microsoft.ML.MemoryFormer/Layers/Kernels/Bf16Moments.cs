using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The AdamW row update of <see cref="AdamWKernel"/> with the moments stored as bfloat16: the table update is
/// bound by memory bandwidth, and bf16 moments cut the bytes per parameter from 28 (read p, g, m, v; write p, m, v)
/// to 20. The arithmetic is the fp32 update (with √v̂ taken as √v · (1/√(1 − β₂ᵗ)), one division fewer than torch's
/// order, which the fp32 kernel keeps for bit parity); only the stored moments are rounded.
/// </summary>
/// <remarks>
/// Rounding is stochastic: the fp32 bits plus a 16-bit random number, truncated to the upper 16 bits, rounds up with
/// probability equal to the dropped fraction, so the stored moment is unbiased. Round-to-nearest would freeze a moment
/// whose per-step change is below half a bf16 ulp (2⁻⁹ relative): with β₂ = 0.999, v would never decay. The random
/// number is a hash of the element's index, the parameter and the step, so results do not depend on threads or on
/// vector width. Non-finite moments are not handled (a diverged step is rejected before the update).
/// </remarks>
internal static unsafe class Bf16Moments
{
    /// <summary>The per-step, per-parameter seed of the rounding noise.</summary>
    public static uint Salt(long step, int parameter) => Mix((uint)step * 0x9E3779B1u ^ ((uint)parameter * 0x85EBCA6Bu) ^ 0x5BD1E995u);

    /// <summary>One AdamW step over <paramref name="n"/> elements whose first has index <paramref name="index"/> in its parameter.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void UpdateRow(float* p, float* g, ushort* m, ushort* v, int n, in AdamWKernel.Coefficients c, long index, uint salt)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            i = KernelSettings.Current.LeanBf16Update && Avx512BW.IsSupported ? UpdateRow512Lean(p, g, m, v, n, c, index, salt) : UpdateRow512(p, g, m, v, n, c, index, salt);
        if (Vector256.IsHardwareAccelerated)
        {
            var k = new VectorCoefficients(c);
            var lanes = Vector256.Create(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u);
            for (; i + 16 <= n; i += 16)
            {
                var (m0, m1) = Vector256.Widen(Vector256.Load(m + i));
                var (v0, v1) = Vector256.Widen(Vector256.Load(v + i));
                var noise0 = Noise(Vector256.Create((uint)(index + i)) + lanes, salt);
                var noise1 = Noise(Vector256.Create((uint)(index + i + 8)) + lanes, salt);
                var (mo0, vo0) = Update(p + i, g + i, m0, v0, k);
                var (mo1, vo1) = Update(p + i + 8, g + i + 8, m1, v1, k);
                var mask = Vector256.Create(0xFFFFu);
                Vector256.Narrow(Round(mo0, noise0 & mask), Round(mo1, noise1 & mask)).Store(m + i);
                Vector256.Narrow(Round(vo0, noise0 >> 16), Round(vo1, noise1 >> 16)).Store(v + i);
            }
        }
        for (; i < n; i++)
        {
            uint noise = Mix((uint)(index + i) ^ salt);
            float gi = c.GradScale != 1f ? g[i] * c.GradScale : g[i];
            float pi = p[i] * c.Decay;
            float mi = (ToFloat(m[i]) * c.Beta1) + (c.OneMinusBeta1 * gi);
            float vi = (ToFloat(v[i]) * c.Beta2) + (c.OneMinusBeta2 * gi * gi);
            float denom = (MathF.Sqrt(vi) * (1f / c.Bias2Sqrt)) + c.Eps;
            p[i] = pi + (c.NegStepSize * mi / denom);
            m[i] = (ushort)((BitConverter.SingleToUInt32Bits(mi) + (noise & 0xFFFF)) >> 16);
            v[i] = (ushort)((BitConverter.SingleToUInt32Bits(vi) + (noise >> 16)) >> 16);
        }
    }

    /// <summary>
    /// The 512-bit loop of <see cref="UpdateRow"/> (32 elements at a time; half the instructions of the 256-bit loop on
    /// a row): the same elementwise operations and the same noise per element index, so the same bits. Returns how many
    /// elements it did.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int UpdateRow512(float* p, float* g, ushort* m, ushort* v, int n, in AdamWKernel.Coefficients c, long index, uint salt)
    {
        var k = new VectorCoefficients512(c);
        var lanes = Vector512.Create(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u);
        var mask = Vector512.Create(0xFFFFu);
        var saltVector = Vector512.Create(salt);
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var (m0, m1) = Vector512.Widen(Vector512.Load(m + i));
            var (v0, v1) = Vector512.Widen(Vector512.Load(v + i));
            var noise0 = Noise512(Vector512.Create((uint)(index + i)) + lanes, saltVector);
            var noise1 = Noise512(Vector512.Create((uint)(index + i + 16)) + lanes, saltVector);
            var (mo0, vo0) = Update512(p + i, g + i, m0, v0, k);
            var (mo1, vo1) = Update512(p + i + 16, g + i + 16, m1, v1, k);
            Vector512.Narrow((mo0.AsUInt32() + (noise0 & mask)) >> 16, (mo1.AsUInt32() + (noise1 & mask)) >> 16).Store(m + i);
            Vector512.Narrow((vo0.AsUInt32() + (noise0 >> 16)) >> 16, (vo1.AsUInt32() + (noise1 >> 16)) >> 16).Store(v + i);
        }
        return i;
    }

    /// <summary>
    /// <see cref="UpdateRow512"/> in fewer instructions on ports 0 and 5, which bound it (not the divider: docs/benchmarks.md, "The
    /// AdamW step without the divider"), with the same bits: the bf16 moments widened from memory (<c>vpmovzxwd</c> with its load),
    /// narrowed by one <c>vpackusdw</c> and one <c>vpermq</c> per 32 (instead of two <c>vpmovdw</c> of two uops and an insert: the
    /// values are at most 0xFFFF, so saturation never applies), the element indices kept in a vector counter, and the hash's first
    /// and last xor-shifts folded into <c>vpternlogd</c>: x ^ salt ^ ((x ^ salt) ≫ 16) = x ^ (x ≫ 16) ^ (salt ^ salt ≫ 16), the
    /// first moment's noise (h ^ h ≫ 16) &amp; 0xFFFF in one, and the second's (h ^ h ≫ 16) ≫ 16 = h ≫ 16.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int UpdateRow512Lean(float* p, float* g, ushort* m, ushort* v, int n, in AdamWKernel.Coefficients c, long index, uint salt)
    {
        var k = new VectorCoefficients512(c);
        var counter = Vector512.Create((uint)index) + Vector512.Create(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u);
        var saltMix = Vector512.Create(salt ^ (salt >> 16));
        var low = Vector512.Create(0xFFFFu);
        var sixteen = Vector512.Create(16u);
        var order = Vector512.Create(0ul, 2ul, 4ul, 6ul, 1ul, 3ul, 5ul, 7ul);                // vpackusdw's 128-bit lanes back in order
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var m0 = Avx512F.ConvertToVector512UInt32(Vector256.Load(m + i));
            var m1 = Avx512F.ConvertToVector512UInt32(Vector256.Load(m + i + 16));
            var v0 = Avx512F.ConvertToVector512UInt32(Vector256.Load(v + i));
            var v1 = Avx512F.ConvertToVector512UInt32(Vector256.Load(v + i + 16));
            var h0 = Hash512(counter, saltMix);
            var h1 = Hash512(counter + sixteen, saltMix);
            counter += Vector512.Create(32u);
            var (mo0, vo0) = Update512(p + i, g + i, m0, v0, k);
            var (mo1, vo1) = Update512(p + i + 16, g + i + 16, m1, v1, k);
            Vector512<uint> high0 = h0 >> 16, high1 = h1 >> 16;
            var mNoise0 = Avx512F.TernaryLogic(h0, high0, low, 0x28);                          // (A ^ B) & C
            var mNoise1 = Avx512F.TernaryLogic(h1, high1, low, 0x28);
            Pack((mo0.AsUInt32() + mNoise0) >> 16, (mo1.AsUInt32() + mNoise1) >> 16, order).Store(m + i);
            Pack((vo0.AsUInt32() + high0) >> 16, (vo1.AsUInt32() + high1) >> 16, order).Store(v + i);
        }
        return i;
    }

    /// <summary><see cref="Noise512"/> before its last xor-shift, with the salt pre-mixed (<paramref name="saltMix"/> = salt ^ salt ≫ 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> Hash512(Vector512<uint> index, Vector512<uint> saltMix)
    {
        var x = Avx512F.TernaryLogic(index, index >> 16, saltMix, 0x96);                       // A ^ B ^ C
        x *= Vector512.Create(0x7FEB352Du);
        x ^= x >> 15;
        return x * Vector512.Create(0x846CA68Bu);
    }

    /// <summary>Two vectors of values ≤ 0xFFFF as 32 ushorts in order (<c>vpackusdw</c> + <c>vpermq</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ushort> Pack(Vector512<uint> low, Vector512<uint> high, Vector512<ulong> order) =>
        Avx512F.PermuteVar8x64(Avx512BW.PackUnsignedSaturate(low.AsInt32(), high.AsInt32()).AsUInt64(), order).AsUInt16();

    /// <summary><see cref="Update"/> on sixteen elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float> M, Vector512<float> V) Update512(float* p, float* g, Vector512<uint> m16, Vector512<uint> v16, in VectorCoefficients512 k)
    {
        var gi = k.Scaled ? Vector512.Load(g) * k.Scale : Vector512.Load(g);
        var pi = Vector512.Load(p) * k.Decay;
        var mi = ((m16 << 16).AsSingle() * k.Beta1) + (k.OneMinusBeta1 * gi);
        var vi = ((v16 << 16).AsSingle() * k.Beta2) + (k.OneMinusBeta2 * gi * gi);
        var denom = (Vector512.Sqrt(vi) * k.InverseBias2) + k.Eps;
        pi += k.NegStep * mi / denom;
        pi.Store(p);
        return (mi, vi);
    }

    /// <summary><see cref="Noise"/> on sixteen lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<uint> Noise512(Vector512<uint> index, Vector512<uint> salt)
    {
        var x = index ^ salt;
        x ^= x >> 16;
        x *= Vector512.Create(0x7FEB352Du);
        x ^= x >> 15;
        x *= Vector512.Create(0x846CA68Bu);
        return x ^ (x >> 16);
    }

    /// <summary>The bf16 value <paramref name="bits"/> as fp32 (exact).</summary>
    public static float ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>Eight elements of the fp32 update (the fp32 kernel's order, the bias correction multiplied); returns the new moments.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> M, Vector256<float> V) Update(float* p, float* g, Vector256<uint> m16, Vector256<uint> v16, in VectorCoefficients k)
    {
        var gi = k.Scaled ? Vector256.Load(g) * k.Scale : Vector256.Load(g);
        var pi = Vector256.Load(p) * k.Decay;
        var mi = ((m16 << 16).AsSingle() * k.Beta1) + (k.OneMinusBeta1 * gi);
        var vi = ((v16 << 16).AsSingle() * k.Beta2) + (k.OneMinusBeta2 * gi * gi);
        var denom = (Vector256.Sqrt(vi) * k.InverseBias2) + k.Eps;
        pi += k.NegStep * mi / denom;
        pi.Store(p);
        return (mi, vi);
    }

    /// <summary>fp32 → bf16 bits (in the low half of each lane), rounded up with probability (dropped bits) / 2¹⁶.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Round(Vector256<float> x, Vector256<uint> noise16) => (x.AsUInt32() + noise16) >> 16;

    /// <summary>32 random bits per lane from the element indices (lowbias32 hash).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Noise(Vector256<uint> index, uint salt)
    {
        var x = index ^ Vector256.Create(salt);
        x ^= x >> 16;
        x *= Vector256.Create(0x7FEB352Du);
        x ^= x >> 15;
        x *= Vector256.Create(0x846CA68Bu);
        return x ^ (x >> 16);
    }

    /// <summary>The scalar <see cref="Noise"/>.</summary>
    private static uint Mix(uint x)
    {
        x ^= x >> 16;
        x *= 0x7FEB352Du;
        x ^= x >> 15;
        x *= 0x846CA68Bu;
        return x ^ (x >> 16);
    }

    private readonly struct VectorCoefficients(in AdamWKernel.Coefficients c)
    {
        public readonly bool Scaled = c.GradScale != 1f;
        public readonly Vector256<float> Scale = Vector256.Create(c.GradScale);
        public readonly Vector256<float> Decay = Vector256.Create(c.Decay);
        public readonly Vector256<float> Beta1 = Vector256.Create(c.Beta1);
        public readonly Vector256<float> OneMinusBeta1 = Vector256.Create(c.OneMinusBeta1);
        public readonly Vector256<float> Beta2 = Vector256.Create(c.Beta2);
        public readonly Vector256<float> OneMinusBeta2 = Vector256.Create(c.OneMinusBeta2);
        public readonly Vector256<float> InverseBias2 = Vector256.Create(1f / c.Bias2Sqrt);
        public readonly Vector256<float> Eps = Vector256.Create(c.Eps);
        public readonly Vector256<float> NegStep = Vector256.Create(c.NegStepSize);
    }

    private readonly struct VectorCoefficients512(in AdamWKernel.Coefficients c)
    {
        public readonly bool Scaled = c.GradScale != 1f;
        public readonly Vector512<float> Scale = Vector512.Create(c.GradScale);
        public readonly Vector512<float> Decay = Vector512.Create(c.Decay);
        public readonly Vector512<float> Beta1 = Vector512.Create(c.Beta1);
        public readonly Vector512<float> OneMinusBeta1 = Vector512.Create(c.OneMinusBeta1);
        public readonly Vector512<float> Beta2 = Vector512.Create(c.Beta2);
        public readonly Vector512<float> OneMinusBeta2 = Vector512.Create(c.OneMinusBeta2);
        public readonly Vector512<float> InverseBias2 = Vector512.Create(1f / c.Bias2Sqrt);
        public readonly Vector512<float> Eps = Vector512.Create(c.Eps);
        public readonly Vector512<float> NegStep = Vector512.Create(c.NegStepSize);
    }
}
