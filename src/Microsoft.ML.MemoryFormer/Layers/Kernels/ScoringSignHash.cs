using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The scoring encoder's sign hash of one token (<see cref="FusedEncoderBlock"/>): K = 16 chunks of τ bits, no Jacobian, straight into
/// int rows. Lane for lane the operations of <see cref="WideSignHash.HashBlock"/> with the lean, scaled exp (the defaults:
/// <see cref="KernelSettings.LeanWideHash"/>, <see cref="KernelSettings.ScaledExp"/>) in the same order — |z|, the exp of |z|·scale,
/// the running ‖z‖₁ and Π (1 + e), one reciprocal — so the same codes and weights, with what the general kernel spends around them left
/// out: its per-element tests of the switches, the scale reloaded from the stack, the exps stored for a Jacobian, the code built through a
/// mask-to-vector move, and the int64 rows converted to int32 afterwards.
/// </summary>
internal static unsafe class ScoringSignHash
{
    /// <summary>Whether <see cref="Hash"/> computes what <see cref="SignHashKernel.HashRow"/> does for these chunks now: AVX-512, 16 chunks
    /// of 4 ≤ τ ≤ 16 bits, the 16-lane path taken (<see cref="WideSignHash.Pays"/>) with the lean, scaled exp, and the switch on.</summary>
    public static bool Applies(int chunks, int bits)
    {
        var settings = KernelSettings.Current;
        return chunks == WideSignHash.Lanes && bits <= 16 && settings.ScoringSignHash && settings.WideSignHash && settings.LeanWideHash
            && settings.ScaledExp && WideSignHash.Pays(bits, jacobian: false);
    }

    /// <summary>
    /// Codes and weights of the 16 chunks of <paramref name="z"/> (16·τ floats): index[c] = c·2^τ + code, w[c] the chunk's weight
    /// (<paramref name="scale"/> = −2/t, or −2 with ‖z‖₁ scaling); <see cref="Applies"/> must hold.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    public static void Hash(float* z, int bits, bool l1Scaled, float scale, int* index, float* w)
    {
        var xt = stackalloc Vector512<float>[16 + 8];                             // [τ][16] element b of each chunk, and a tile
        if (bits > 8 && bits % 8 != 0 && Avx2.IsSupported)
            WideSignHash.LoadTransposedGathered(z, bits, xt);
        else
        {
            float* padded = stackalloc float[WideSignHash.Lanes * 16];
            WideSignHash.LoadTransposed(z, bits, padded, xt);
        }
        Vector512<float> one = Vector512<float>.One, l1 = Vector512<float>.Zero, product = one, s = Vector512.Create(scale);
        var code = Vector512<int>.Zero;
        for (int b = 0; b < bits; b++)
        {
            var v = xt[b];
            var a = Vector512.Abs(v);
            var e = WindowAttention.LeanExp512(a * s, scaled: true);
            var set = Vector512.GreaterThanOrEqual(v, Vector512<float>.Zero).AsInt32();           // bit τ−1−b: MSB first
            code = Vector512.ConditionalSelect(set, code | Vector512.Create(1 << (bits - 1 - b)), code);
            l1 += a;
            product *= one + e;
        }
        var p = one / product;
        (l1Scaled ? l1 * p : p).Store(w);
        (code + (Vector512<int>.Indices << bits)).Store(index);                  // chunk c's rows start at c·2^τ
    }
}
