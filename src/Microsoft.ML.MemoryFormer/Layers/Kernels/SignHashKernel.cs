using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The loops behind <see cref="FusedSignHash"/> over raw fp32 memory, parallel over tokens. A chunk's code, ‖z‖₁ and
/// product Π (1 + e) are reductions over its τ elements, and chunks need not line up with SIMD registers (τ + 2 = 10
/// bits in the FFN's second layer). So a token row goes in blocks of 8 chunks, transposed: vector b holds element b
/// of the 8 chunks, one chunk per lane, and every reduction becomes a loop over b of plain vector ops — no shuffle
/// trees, and the scalar loop's order of operations, so both paths give the same bits up to exp's rounding. The
/// Jacobian is elementwise in the same layout and goes back through the inverse transpose. On AVX-512 machines blocks of
/// 16 chunks go first (<see cref="WideSignHash"/>, the same operations per lane, so the same bits). The last K mod 8 chunks
/// (and every chunk on hardware without 256-bit SIMD) take the scalar loop, <see cref="HashChunk"/>.
/// </summary>
internal static unsafe class SignHashKernel
{
    /// <summary>Chunks per block: one lane of a <see cref="Vector256{T}"/> each.</summary>
    private const int Lanes = 8;

    /// <summary>Rows int64 [N, K], weights [N, K] and, when a gradient is needed, J = ∂w/∂x [N, K·τ]; and the rows as int32 in a pooled
    /// array, when asked for (<c>Rows32</c>, <see cref="Runtime.KernelSettings.HashWritesRows32"/>).</summary>
    public sealed record Result(Tensor Rows, Tensor Weights, Tensor? Jacobian, int BitsPerChunk, PooledRows? Rows32 = null);

    public static Result Run(Tensor x, int bits, bool l1Scaled, float temperature, bool withJacobian, bool rows32 = false)
    {
        using var scope = NewDisposeScope();
        var xc = x.detach().contiguous();
        int n = (int)xc.shape[0], d = (int)xc.shape[1], k = d / bits;
        var rows = KernelBuffers.EmptyInt64(n, k);
        var weights = KernelBuffers.Empty(n, k);
        var jacobian = withJacobian ? KernelBuffers.Empty(n, d) : null;
        nint xp = (nint)TensorMemory.Floats(xc), rp = (nint)TensorMemory.Longs(rows), wp = (nint)TensorMemory.Floats(weights);
        nint jp = jacobian is null ? 0 : (nint)TensorMemory.Floats(jacobian);
        float scale = -2f / (l1Scaled ? 1f : temperature);
        var narrow = rows32 ? PooledRows.ForHash(n * k, 1 << bits) : null;
        KernelParallel.For(n, 8L * d, (start, end) =>
        {
            fixed (int* r32 = narrow?.Array)
            {
                for (int i = start; i < end; i++)
                {
                    float* jr = jp == 0 ? null : (float*)jp + ((long)i * d);
                    long* r = (long*)rp + ((long)i * k);
                    HashRow((float*)xp + ((long)i * d), k, bits, l1Scaled, scale, r, (float*)wp + ((long)i * k), jr);
                    if (r32 != null)
                        Narrow(r, r32 + ((long)i * k), k);                     // the token's rows, still in L1
                }
            }
        });
        return new Result(rows.MoveToOuterDisposeScope(), weights.MoveToOuterDisposeScope(),
            jacobian?.MoveToOuterDisposeScope(), bits, narrow);
    }

    /// <summary>dst[c] = (int)src[c] for the <paramref name="k"/> rows of one token (each below 2^31: a table's row count is an int).</summary>
    private static void Narrow(long* src, int* dst, int k)
    {
        int c = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; c + 16 <= k; c += 16)
                Vector512.Narrow(Vector512.Load(src + c), Vector512.Load(src + c + 8)).Store(dst + c);
        }
        for (; c < k; c++)
            dst[c] = (int)src[c];
    }

    /// <summary>∂L/∂x [N, K·τ] = ∂L/∂w [N, K] (repeated over each chunk's τ elements) · J.</summary>
    public static Tensor Backward(Tensor gradWeights, Tensor jacobian, int bits)
    {
        using var scope = NewDisposeScope();
        var g = gradWeights.to(ScalarType.Float32).contiguous();
        int n = (int)jacobian.shape[0], d = (int)jacobian.shape[1], k = d / bits;
        var dx = KernelBuffers.Empty(n, d);
        nint gp = (nint)TensorMemory.Floats(g), jp = (nint)TensorMemory.Floats(jacobian), dp = (nint)TensorMemory.Floats(dx);
        KernelParallel.For(n, d, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                float* gr = (float*)gp + ((long)i * k), jr = (float*)jp + ((long)i * d), dr = (float*)dp + ((long)i * d);
                for (int c = 0; c < k; c++)
                {
                    float gc = gr[c];
                    int b = c * bits, chunkEnd = b + bits;
                    if (Vector256.IsHardwareAccelerated)
                    {
                        for (; b + 8 <= chunkEnd; b += 8)
                            (Vector256.Load(jr + b) * gc).Store(dr + b);
                    }
                    for (; b < chunkEnd; b++)
                        dr[b] = gc * jr[b];
                }
            }
        });
        return dx.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One token's K chunks of τ = <paramref name="bits"/> ≤ 16 elements: codes, weights and (if <paramref name="j"/> is
    /// not null) the Jacobian row, with e = exp(<paramref name="scale"/>·|z|), scale = −2/t (−2 for the code weights).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    internal static void HashRow(float* x, int k, int bits, bool l1Scaled, float scale, long* rows, float* w, float* j)
    {
        int c = 0;
        if (k >= WideSignHash.Lanes && KernelSettings.Current.WideSignHash && WideSignHash.Pays(bits, j != null))
        {
            var scratch = stackalloc float[WideSignHash.ScratchFloats];
            for (; c + WideSignHash.Lanes <= k; c += WideSignHash.Lanes)
                WideSignHash.HashBlock(x + (c * bits), c, bits, l1Scaled, scale, rows, w, j, scratch);
        }
        if (Vector256.IsHardwareAccelerated && k - c >= Lanes)
        {
            // x and e (later J) transposed, τ ≤ 16 vectors each, and 8 rows of 16 floats for odd-sized chunks.
            var block = stackalloc Vector256<float>[48];
            for (; c + Lanes <= k; c += Lanes)
                HashBlock(x + (c * bits), c, bits, l1Scaled, scale, rows, w, j, block, block + 16, (float*)(block + 32));
        }
        for (; c < k; c++)
            HashChunk(x, c, bits, l1Scaled, scale, rows, w, j);
    }

    /// <summary>
    /// Chunks c … c+7 at <paramref name="z"/>, one per lane; <paramref name="xt"/> and <paramref name="et"/> take τ
    /// vectors each, <paramref name="padded"/> 8 × 16 floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void HashBlock(float* z, int c, int bits, bool l1Scaled, float scale, long* rows, float* w, float* j,
        Vector256<float>* xt, Vector256<float>* et, float* padded)
    {
        LoadTransposed(z, bits, padded, (float*)xt);                             // xt[b] = element b of each chunk
        Vector256<float> zero = Vector256<float>.Zero, one = Vector256<float>.One, l1 = zero, product = one;
        var code = Vector256<int>.Zero;
        for (int b = 0; b < bits; b++)
        {
            var v = xt[b];
            var a = Vector256.Abs(v);
            var e = ExpOfNonPositive(a * scale);
            et[b] = e;
            code = (code << 1) | (Vector256.GreaterThanOrEqual(v, zero).AsInt32() & Vector256<int>.One); // MSB first
            l1 += a;
            product *= one + e;
        }
        var p = one / product;
        (l1Scaled ? l1 * p : p).Store(w + c);
        var offsets = (Vector256.Create(0L, 1, 2, 3) + Vector256.Create((long)c)) << bits;  // chunk c's rows start at c·2^τ
        (Vector256.WidenLower(code) + offsets).Store(rows + c);
        (Vector256.WidenUpper(code) + offsets + Vector256.Create(4L << bits)).Store(rows + c + 4);
        if (j is null)
            return;
        var twoL1 = l1 * 2f;
        var twoOverT = Vector256.Create(-scale);
        for (int b = 0; b < bits; b++)
        {
            var v = xt[b];
            var sign = (Vector256.GreaterThan(v, zero) & one) - (Vector256.LessThan(v, zero) & one);
            var sigmoidNeg = et[b] / (one + et[b]);                                                  // σ(−2|z|/t)
            et[b] = l1Scaled ? sign * p * (one + (twoL1 * sigmoidNeg)) : sign * p * twoOverT * sigmoidNeg;
        }
        StoreTransposed((float*)et, bits, padded, j + (c * bits));
    }

    /// <summary>
    /// exp(x) for x ≤ 0 in float arithmetic (Cephes' expf: x = n·ln 2 + r, |r| ≤ ln 2 / 2, a degree-7 polynomial in r,
    /// then 2^n in the exponent bits): within 1 ulp of the rounded exp, 0 below ln(2^−126) where exp goes subnormal
    /// (1 + e is 1 there anyway), NaN stays NaN. <see cref="Vector256.Exp(Vector256{float})"/> goes through double
    /// precision and cost about three times as much, most of the vectorised hash's time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> ExpOfNonPositive(Vector256<float> x)
    {
        var n = Vector256.Round(x * 1.44269504f);                                  // x / ln 2, to nearest
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-0.693359375f), x);   // ln 2 in two parts, exact n·hi
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(2.12194440e-4f), r);
        var y = Vector256.FusedMultiplyAdd(Vector256.Create(1.9875691500e-4f), r, Vector256.Create(1.3981999507e-3f));
        y = Vector256.FusedMultiplyAdd(y, r, Vector256.Create(8.3334519073e-3f));
        y = Vector256.FusedMultiplyAdd(y, r, Vector256.Create(4.1665795894e-2f));
        y = Vector256.FusedMultiplyAdd(y, r, Vector256.Create(1.6666665459e-1f));
        y = Vector256.FusedMultiplyAdd(y, r, Vector256.Create(5.0000001201e-1f));
        y = Vector256.FusedMultiplyAdd(y, r * r, r) + Vector256<float>.One;
        var twoToN = ((Vector256.ConvertToInt32Native(n) + Vector256.Create(127)) << 23).AsSingle();
        return Vector256.AndNot(y * twoToN, Vector256.LessThan(x, Vector256.Create(-87.33654f)));
    }

    /// <summary>Chunk c alone in scalar code with MathF.Exp: what <see cref="HashBlock"/> does in each lane.</summary>
    private static void HashChunk(float* x, int c, int bits, bool l1Scaled, float scale, long* rows, float* w, float* j)
    {
        float* z = x + (c * bits);
        long code = 0;
        float l1 = 0f, product = 1f;
        for (int b = 0; b < bits; b++)
        {
            float v = z[b];
            code = (code << 1) | (v >= 0f ? 1L : 0L);
            l1 += MathF.Abs(v);
            product *= 1f + MathF.Exp(MathF.Abs(v) * scale);
        }
        float p = 1f / product;
        rows[c] = code + ((long)c << bits);
        w[c] = l1Scaled ? l1 * p : p;
        if (j is null)
            return;
        float* jz = j + (c * bits);
        for (int b = 0; b < bits; b++)
        {
            float v = z[b];
            float sign = v > 0f ? 1f : v < 0f ? -1f : 0f;
            float e = MathF.Exp(MathF.Abs(v) * scale);
            float sigmoidNeg = e / (1f + e);                                      // σ(−2|z|/t)
            jz[b] = l1Scaled ? sign * p * (1f + (2f * l1 * sigmoidNeg)) : sign * p * -scale * sigmoidNeg;
        }
    }

    /// <summary>
    /// xt[b·8 + c] = z[c·τ + b] for 8 chunks of τ floats. In 8 × 8 AVX tiles: straight from x when τ is a multiple of 8,
    /// otherwise through <paramref name="padded"/>, rows of 16 floats filled with whole (overlapping) vector copies.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void LoadTransposed(float* z, int bits, float* padded, float* xt)
    {
        if (!Avx.IsSupported || bits < 4)
        {
            for (int c = 0; c < Lanes; c++)
            {
                for (int b = 0; b < bits; b++)
                    xt[(b * Lanes) + c] = z[(c * bits) + b];
            }
            return;
        }
        int stride = bits;
        if (bits % 8 != 0)
        {
            for (int c = 0; c < Lanes; c++)
                CopyChunk(z + (c * bits), padded + (c * 16), bits);
            z = padded;
            stride = 16;
        }
        for (int b = 0; b < bits; b += 8)
            Transpose8x8(z + b, stride, xt + (b * Lanes), Lanes);
    }

    /// <summary>The inverse of <see cref="LoadTransposed"/>: j[c·τ + b] = jt[b·8 + c].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTransposed(float* jt, int bits, float* padded, float* j)
    {
        if (!Avx.IsSupported || bits < 4)
        {
            for (int c = 0; c < Lanes; c++)
            {
                for (int b = 0; b < bits; b++)
                    j[(c * bits) + b] = jt[(b * Lanes) + c];
            }
            return;
        }
        bool direct = bits % 8 == 0;
        for (int b = 0; b < bits; b += 8)
            Transpose8x8(jt + (b * Lanes), Lanes, direct ? j + b : padded + b, direct ? bits : 16);
        if (!direct)
        {
            for (int c = 0; c < Lanes; c++)
                CopyChunk(padded + (c * 16), j + (c * bits), bits);
        }
    }

    /// <summary>dst[0, n) = src[0, n) for 4 ≤ n ≤ 16 in whole vectors, the last one overlapping the one before.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void CopyChunk(float* src, float* dst, int n)
    {
        if (n < 8)
        {
            Vector128.Load(src).Store(dst);
            Vector128.Load(src + n - 4).Store(dst + n - 4);
            return;
        }
        Vector256.Load(src).Store(dst);
        Vector256.Load(src + n - 8).Store(dst + n - 8);
    }

    /// <summary>The 8 × 8 AVX transpose: interleave pairs of rows, then quads, then swap 128-bit halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose8x8(float* src, int srcStride, float* dst, int dstStride)
    {
        Vector256<float> r0 = Avx.LoadVector256(src), r1 = Avx.LoadVector256(src + srcStride),
            r2 = Avx.LoadVector256(src + (2 * srcStride)), r3 = Avx.LoadVector256(src + (3 * srcStride)),
            r4 = Avx.LoadVector256(src + (4 * srcStride)), r5 = Avx.LoadVector256(src + (5 * srcStride)),
            r6 = Avx.LoadVector256(src + (6 * srcStride)), r7 = Avx.LoadVector256(src + (7 * srcStride));
        Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1), t2 = Avx.UnpackLow(r2, r3),
            t3 = Avx.UnpackHigh(r2, r3), t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5),
            t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);                // a0 b0 a1 b1 | a4 b4 a5 b5 …
        Vector256<float> q0 = Avx.Shuffle(t0, t2, 0x44), q1 = Avx.Shuffle(t0, t2, 0xEE), q2 = Avx.Shuffle(t1, t3, 0x44),
            q3 = Avx.Shuffle(t1, t3, 0xEE), q4 = Avx.Shuffle(t4, t6, 0x44), q5 = Avx.Shuffle(t4, t6, 0xEE),
            q6 = Avx.Shuffle(t5, t7, 0x44), q7 = Avx.Shuffle(t5, t7, 0xEE);          // a0 b0 c0 d0 | a4 b4 c4 d4 …
        Avx.Store(dst, Avx.Permute2x128(q0, q4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(q1, q5, 0x20));
        Avx.Store(dst + (2 * dstStride), Avx.Permute2x128(q2, q6, 0x20));
        Avx.Store(dst + (3 * dstStride), Avx.Permute2x128(q3, q7, 0x20));
        Avx.Store(dst + (4 * dstStride), Avx.Permute2x128(q0, q4, 0x31));
        Avx.Store(dst + (5 * dstStride), Avx.Permute2x128(q1, q5, 0x31));
        Avx.Store(dst + (6 * dstStride), Avx.Permute2x128(q2, q6, 0x31));
        Avx.Store(dst + (7 * dstStride), Avx.Permute2x128(q3, q7, 0x31));
    }
}
