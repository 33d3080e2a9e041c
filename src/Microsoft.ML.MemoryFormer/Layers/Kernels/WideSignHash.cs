using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// <see cref="SignHashKernel"/>'s block of chunks on 16 lanes of a <see cref="Vector512{T}"/> instead of 8 of a
/// <see cref="Vector256{T}"/> (AVX-512 machines, <see cref="Runtime.KernelSettings.WideSignHash"/>): lane for lane the same
/// elementwise operations in the same order — the exp polynomial, the running ‖z‖₁ and product, the reciprocal, the
/// Jacobian — so every chunk gets the same bits as on the 8-lane path, with half the instructions per element and half the
/// transposes' shuffles per chunk. Chunks are transposed in from (and the Jacobian back to) token-major memory as two
/// 8 × 8 tiles side by side in each register, one per 256-bit half.
/// </summary>
internal static unsafe class WideSignHash
{
    /// <summary>Chunks per block: one lane of a <see cref="Vector512{T}"/> each.</summary>
    public const int Lanes = 16;

    /// <summary>Floats of scratch a block needs: x and e (later J) transposed, 16 vectors each, one 8-vector tile, and 16 padded
    /// chunk rows of 16 floats.</summary>
    public const int ScratchFloats = (2 * 16 * Lanes) + (8 * Lanes) + (Lanes * 16);

    /// <summary>True where the block runs: AVX-512F and τ ≥ 4 (narrower chunks keep the 8-lane path).</summary>
    public static bool Supports(int bits) => Avx512F.IsSupported && bits >= 4;

    /// <summary>
    /// Whether the block is worth taking: on τ not a multiple of 8 (the ML₂ input's τ + 2 = 10), whose padded transposes it
    /// halves, and wherever the Jacobian is written (training). With τ a multiple of 8 and no Jacobian (the inference hash of
    /// Q/K/V and ML₁) the 8-lane path's straight AVX transposes are cheaper than its register pairs and permutes: 0.90–0.94×
    /// there in <c>perf probe-hash</c> (docs/benchmarks.md, "The training step at d = 256 in the sign hash and the fused
    /// update's terms").
    /// </summary>
    public static bool Pays(int bits, bool jacobian) =>
        Supports(bits) && (jacobian || bits % 8 != 0 || Runtime.KernelSettings.Current.WideInferenceHash);

    /// <summary>
    /// Chunks c … c+15 at <paramref name="z"/> (τ = <paramref name="bits"/> ≤ 16 floats each), one per lane: codes into
    /// <paramref name="rows"/>, weights into <paramref name="w"/>, and the Jacobian into <paramref name="j"/> when not null;
    /// <paramref name="scratch"/> holds <see cref="ScratchFloats"/> floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void HashBlock(float* z, int c, int bits, bool l1Scaled, float scale, long* rows, float* w, float* j, float* scratch)
    {
        var xt = (Vector512<float>*)scratch;                                       // [τ][16]: element b of each chunk
        var et = xt + 16;                                                          // e, later J, in the same layout
        var tile = et + 16;                                                        // 8 vectors: one transposed tile on the way out
        float* padded = (float*)(tile + 8);                                        // 16 rows of 16 floats for τ not a multiple of 8
        bool lean = Runtime.KernelSettings.Current.LeanWideHash, scaled = Runtime.KernelSettings.Current.ScaledExp;
        if (lean && bits > 8 && bits % 8 != 0 && Avx2.IsSupported)
            LoadTransposedGathered(z, bits, xt);
        else
            LoadTransposed(z, bits, padded, xt);
        Vector512<float> zero = Vector512<float>.Zero, one = Vector512<float>.One, l1 = zero, product = one;
        var code = Vector512<int>.Zero;
        if (!lean)                                                                 // the exp chosen outside the loop: no branch per step
            Elements<FullExp>(xt, et, bits, scale, ref code, ref l1, ref product);
        else if (scaled)
            Elements<ScaledLeanExp>(xt, et, bits, scale, ref code, ref l1, ref product);
        else
            Elements<LeanExp>(xt, et, bits, scale, ref code, ref l1, ref product);
        var p = one / product;
        (l1Scaled ? l1 * p : p).Store(w + c);
        var offsets = (Vector512.Create(0L, 1, 2, 3, 4, 5, 6, 7) + Vector512.Create((long)c)) << bits;   // chunk c's rows start at c·2^τ
        (Vector512.WidenLower(code) + offsets).Store(rows + c);
        (Vector512.WidenUpper(code) + offsets + Vector512.Create(8L << bits)).Store(rows + c + 8);
        if (j is null)
            return;
        var twoL1 = l1 * 2f;
        var twoOverT = Vector512.Create(-scale);
        for (int b = 0; b < bits; b++)
        {
            var v = xt[b];
            var sign = (Vector512.GreaterThan(v, zero) & one) - (Vector512.LessThan(v, zero) & one);
            var sigmoidNeg = et[b] / (one + et[b]);                                                  // σ(−2|z|/t)
            et[b] = l1Scaled ? sign * p * (one + (twoL1 * sigmoidNeg)) : sign * p * twoOverT * sigmoidNeg;
        }
        StoreTransposed(et, bits, tile, padded, j + (c * bits));
    }

    /// <summary>The per-element steps of <see cref="HashBlock"/> over its τ transposed vectors, the exp fixed by <typeparamref name="TExp"/>
    /// when the method is compiled: e = exp(|z|·scale) into <paramref name="et"/>, the code MSB first, ‖z‖₁ and Π (1 + e).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Elements<TExp>(Vector512<float>* xt, Vector512<float>* et, int bits, float scale, ref Vector512<int> code,
        ref Vector512<float> l1, ref Vector512<float> product) where TExp : struct, IExp
    {
        Vector512<float> zero = Vector512<float>.Zero, one = Vector512<float>.One;
        for (int b = 0; b < bits; b++)
        {
            var v = xt[b];
            var a = Vector512.Abs(v);
            var e = TExp.Of(a * scale);                                            // a·scale ≤ 0: the same bits for each exp
            et[b] = e;
            code = (code << 1) | (Vector512.GreaterThanOrEqual(v, zero).AsInt32() & Vector512<int>.One); // MSB first
            l1 += a;
            product *= one + e;
        }
    }

    /// <summary>Which exp <see cref="Elements"/> compiles in.</summary>
    internal interface IExp
    {
        static abstract Vector512<float> Of(Vector512<float> x);
    }

    /// <summary><see cref="WindowAttention.Exp512"/> (<see cref="Runtime.KernelSettings.LeanWideHash"/> off).</summary>
    private readonly struct FullExp : IExp
    {
        public static Vector512<float> Of(Vector512<float> x) => WindowAttention.Exp512(x);
    }

    /// <summary>The lean exp with 2ⁿ in the exponent bits (<see cref="Runtime.KernelSettings.ScaledExp"/> off).</summary>
    private readonly struct LeanExp : IExp
    {
        public static Vector512<float> Of(Vector512<float> x) => WindowAttention.LeanExp512(x, scaled: false);
    }

    /// <summary>The lean exp with 2ⁿ by <c>vscalefps</c> (the default).</summary>
    private readonly struct ScaledLeanExp : IExp
    {
        public static Vector512<float> Of(Vector512<float> x) => WindowAttention.LeanExp512(x, scaled: true);
    }

    /// <summary>xt[b·16 + c] = z[c·τ + b] for 16 chunks of τ floats: straight from x when τ is a multiple of 8, otherwise
    /// through <paramref name="padded"/> (rows of 16 floats).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void LoadTransposed(float* z, int bits, float* padded, Vector512<float>* xt)
    {
        int stride = bits;
        if (bits % 8 != 0)
        {
            for (int c = 0; c < Lanes; c++)
                SignHashKernel.CopyChunk(z + (c * bits), padded + (c * 16), bits);
            z = padded;
            stride = 16;
        }
        for (int b = 0; b < bits; b += 8)
        {
            float* s = z + b;
            Transpose(
                Pair(s, s + (8 * stride)), Pair(s + stride, s + (9 * stride)), Pair(s + (2 * stride), s + (10 * stride)),
                Pair(s + (3 * stride), s + (11 * stride)), Pair(s + (4 * stride), s + (12 * stride)), Pair(s + (5 * stride), s + (13 * stride)),
                Pair(s + (6 * stride), s + (14 * stride)), Pair(s + (7 * stride), s + (15 * stride)), xt + b);
        }
    }

    /// <summary>
    /// <see cref="LoadTransposed"/> for τ &gt; 8 not a multiple of 8 (the Memory Block's τ + 2 = 10) without the padded copy: whole
    /// groups of 8 elements transposed straight from x (chunk rows τ floats apart, reading only inside the 16 chunks), the last
    /// τ mod 8 elements gathered one vector each. The same values; the padded path's reloads of half-written rows miss store
    /// forwarding.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void LoadTransposedGathered(float* z, int bits, Vector512<float>* xt)
    {
        int b = 0;
        for (; b + 8 <= bits; b += 8)
        {
            float* s = z + b;
            Transpose(
                Pair(s, s + (8 * bits)), Pair(s + bits, s + (9 * bits)), Pair(s + (2 * bits), s + (10 * bits)),
                Pair(s + (3 * bits), s + (11 * bits)), Pair(s + (4 * bits), s + (12 * bits)), Pair(s + (5 * bits), s + (13 * bits)),
                Pair(s + (6 * bits), s + (14 * bits)), Pair(s + (7 * bits), s + (15 * bits)), xt + b);
        }
        var index = Vector256<int>.Indices * bits;                                  // chunk c's element at c·τ, 8 chunks a gather
        for (; b < bits; b++)
            xt[b] = Vector512.Create(Avx2.GatherVector256(z + b, index, sizeof(float)), Avx2.GatherVector256(z + (8 * bits) + b, index, sizeof(float)));
    }

    /// <summary>The inverse of <see cref="LoadTransposed"/>: j[c·τ + b] = v[b][c], through the 8-vector <paramref name="rows"/>
    /// (τ not a multiple of 8 through <paramref name="padded"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTransposed(Vector512<float>* v, int bits, Vector512<float>* rows, float* padded, float* j)
    {
        bool direct = bits % 8 == 0;
        float* dst = direct ? j : padded;
        int stride = direct ? bits : 16;
        for (int b = 0; b < bits; b += 8)
        {
            Transpose(v[b], v[b + 1], v[b + 2], v[b + 3], v[b + 4], v[b + 5], v[b + 6], v[b + 7], rows);
            for (int c = 0; c < 8; c++)
            {
                rows[c].GetLower().Store(dst + (c * stride) + b);                 // chunk c
                rows[c].GetUpper().Store(dst + ((c + 8) * stride) + b);           // chunk c + 8
            }
        }
        if (!direct)
        {
            for (int c = 0; c < Lanes; c++)
                SignHashKernel.CopyChunk(padded + (c * 16), j + (c * bits), bits);
        }
    }

    /// <summary>Eight floats at <paramref name="low"/> in the lower half, eight at <paramref name="high"/> in the upper.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Pair(float* low, float* high) => Vector512.Create(Vector256.Load(low), Vector256.Load(high));

    /// <summary>
    /// Two 8 × 8 transposes at once, one in each 256-bit half (rows r0 … r7 → columns into dst[0 … 7]): the AVX network of
    /// <see cref="SignHashKernel.Transpose8x8"/> (interleave pairs, then quads, per 128-bit lane), then 128-bit blocks
    /// exchanged within each half by one two-source permute.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose(Vector512<float> r0, Vector512<float> r1, Vector512<float> r2, Vector512<float> r3,
        Vector512<float> r4, Vector512<float> r5, Vector512<float> r6, Vector512<float> r7, Vector512<float>* dst)
    {
        Vector512<float> t0 = Avx512F.UnpackLow(r0, r1), t1 = Avx512F.UnpackHigh(r0, r1), t2 = Avx512F.UnpackLow(r2, r3),
            t3 = Avx512F.UnpackHigh(r2, r3), t4 = Avx512F.UnpackLow(r4, r5), t5 = Avx512F.UnpackHigh(r4, r5),
            t6 = Avx512F.UnpackLow(r6, r7), t7 = Avx512F.UnpackHigh(r6, r7);
        Vector512<float> q0 = Avx512F.Shuffle(t0, t2, 0x44), q1 = Avx512F.Shuffle(t0, t2, 0xEE), q2 = Avx512F.Shuffle(t1, t3, 0x44),
            q3 = Avx512F.Shuffle(t1, t3, 0xEE), q4 = Avx512F.Shuffle(t4, t6, 0x44), q5 = Avx512F.Shuffle(t4, t6, 0xEE),
            q6 = Avx512F.Shuffle(t5, t7, 0x44), q7 = Avx512F.Shuffle(t5, t7, 0xEE);
        var low = Vector512.Create(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);     // Permute2x128 0x20 in each half
        var high = Vector512.Create(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);   // 0x31
        dst[0] = Avx512F.PermuteVar16x32x2(q0, low, q4);
        dst[1] = Avx512F.PermuteVar16x32x2(q1, low, q5);
        dst[2] = Avx512F.PermuteVar16x32x2(q2, low, q6);
        dst[3] = Avx512F.PermuteVar16x32x2(q3, low, q7);
        dst[4] = Avx512F.PermuteVar16x32x2(q0, high, q4);
        dst[5] = Avx512F.PermuteVar16x32x2(q1, high, q5);
        dst[6] = Avx512F.PermuteVar16x32x2(q2, high, q6);
        dst[7] = Avx512F.PermuteVar16x32x2(q3, high, q7);
    }
}
