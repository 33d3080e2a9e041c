using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The register tiles and row passes of <see cref="CausalAttentionKernel"/>: one 8 × 32 matrix-product tile in sixteen
/// 512-bit accumulators (A's elements broadcast from any strides, B's rows loaded 32 floats at a time), the causal softmax
/// of a score row, and the backward's row steps. Every method is compiled fully optimised from the first call
/// (<c>AggressiveOptimization</c>), so the sums add in one order in every call (as <see cref="WindowAttention"/>).
/// </summary>
internal static unsafe class AttentionTiles
{
    /// <summary>Rows of one tile.</summary>
    public const int Rows = 8;

    /// <summary>Columns of one tile.</summary>
    public const int Columns = 32;

    /// <summary>
    /// c[r, 0..32) = alpha · Σ_{k0 ≤ x &lt; k1} a[r·aRow + x·aCol] · b[x·ldb + 0..32) for r &lt; <paramref name="store"/>.
    /// A's rows from <paramref name="rows"/> on repeat its last row (computed, never stored).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Product(float* a, long aRow, long aCol, int rows, float* b, long ldb, int k0, int k1, float* c, long ldc, int store, float alpha)
    {
        float* a0 = a, a1 = a + (Math.Min(1, rows - 1) * aRow), a2 = a + (Math.Min(2, rows - 1) * aRow), a3 = a + (Math.Min(3, rows - 1) * aRow);
        float* a4 = a + (Math.Min(4, rows - 1) * aRow), a5 = a + (Math.Min(5, rows - 1) * aRow), a6 = a + (Math.Min(6, rows - 1) * aRow), a7 = a + (Math.Min(7, rows - 1) * aRow);
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        for (long x = k0; x < k1; x++)
        {
            float* row = b + (x * ldb);
            var b0 = Vector512.Load(row);
            var b1 = Vector512.Load(row + 16);
            long o = x * aCol;
            var s = Vector512.Create(a0[o]);
            c00 = Vector512.FusedMultiplyAdd(s, b0, c00); c01 = Vector512.FusedMultiplyAdd(s, b1, c01);
            s = Vector512.Create(a1[o]);
            c10 = Vector512.FusedMultiplyAdd(s, b0, c10); c11 = Vector512.FusedMultiplyAdd(s, b1, c11);
            s = Vector512.Create(a2[o]);
            c20 = Vector512.FusedMultiplyAdd(s, b0, c20); c21 = Vector512.FusedMultiplyAdd(s, b1, c21);
            s = Vector512.Create(a3[o]);
            c30 = Vector512.FusedMultiplyAdd(s, b0, c30); c31 = Vector512.FusedMultiplyAdd(s, b1, c31);
            s = Vector512.Create(a4[o]);
            c40 = Vector512.FusedMultiplyAdd(s, b0, c40); c41 = Vector512.FusedMultiplyAdd(s, b1, c41);
            s = Vector512.Create(a5[o]);
            c50 = Vector512.FusedMultiplyAdd(s, b0, c50); c51 = Vector512.FusedMultiplyAdd(s, b1, c51);
            s = Vector512.Create(a6[o]);
            c60 = Vector512.FusedMultiplyAdd(s, b0, c60); c61 = Vector512.FusedMultiplyAdd(s, b1, c61);
            s = Vector512.Create(a7[o]);
            c70 = Vector512.FusedMultiplyAdd(s, b0, c70); c71 = Vector512.FusedMultiplyAdd(s, b1, c71);
        }
        var al = Vector512.Create(alpha);
        Store(c, 0, store, c00 * al, c01 * al); Store(c + ldc, 1, store, c10 * al, c11 * al);
        Store(c + (2 * ldc), 2, store, c20 * al, c21 * al); Store(c + (3 * ldc), 3, store, c30 * al, c31 * al);
        Store(c + (4 * ldc), 4, store, c40 * al, c41 * al); Store(c + (5 * ldc), 5, store, c50 * al, c51 * al);
        Store(c + (6 * ldc), 6, store, c60 * al, c61 * al); Store(c + (7 * ldc), 7, store, c70 * al, c71 * al);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, int row, int store, Vector512<float> low, Vector512<float> high)
    {
        if (row >= store) return;
        low.Store(c);
        high.Store(c + 16);
    }

    /// <summary>Score row s[0, n) (scaled) → probabilities in place, zeros on [n, end); returns the log-sum-exp.
    /// <paramref name="end"/> is a multiple of 32 and ≥ n. The row max is <see cref="WindowAttention"/>'s <c>vmaxps</c> one
    /// (<c>RowMax512</c>), whose proof of the same bits holds here too: a ±0 maximum changes neither s − max for s ≠ 0 nor
    /// exp(±0) = 1, and top + log(total) with log(total) ≥ +0 is +0 for either zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Softmax(float* s, int n, int end)
    {
        int n16 = (n + 15) & ~15;
        for (int j = n; j < n16; j++) s[j] = float.NegativeInfinity;
        float top = WindowAttention.RowMax512(s, n16);                                   // vmaxps, two chains: the same bits
        var topV = Vector512.Create(top);
        var sum = Vector512<float>.Zero;
        for (int j = 0; j < n16; j += 16)
        {
            var e = WindowAttention.Exp512(Vector512.Load(s + j) - topV);             // −∞ → 0
            e.Store(s + j);
            sum += e;
        }
        float total = Vector512.Sum(sum);
        var inverse = Vector512.Create(1f / total);
        for (int j = 0; j < n16; j += 16) (Vector512.Load(s + j) * inverse).Store(s + j);
        Zero(s, n16, end);
        return top + MathF.Log(total);
    }

    /// <summary>Score row s[0, n) (scaled) → exp(s − lse) in place, zeros on [n, end): the forward's probabilities again.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Probabilities(float* s, int n, int end, float lse)
    {
        int n16 = (n + 15) & ~15;
        for (int j = n; j < n16; j++) s[j] = float.NegativeInfinity;
        var l = Vector512.Create(lse);
        for (int j = 0; j < n16; j += 16)
            WindowAttention.Exp512(Vector512.Load(s + j) - l).Store(s + j);
        Zero(s, n16, end);
    }

    /// <summary>dS row from dP in place: ds[j] = p[j] · (ds[j] − rowDot) on [0, end), end a multiple of 16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScoreGradient(float* p, float* ds, int end, float rowDot)
    {
        var d = Vector512.Create(rowDot);
        for (int j = 0; j < end; j += 16)
            (Vector512.Load(p + j) * (Vector512.Load(ds + j) - d)).Store(ds + j);
    }

    /// <summary>Σ x[i]·y[i] over [0, n), n a multiple of 16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot(float* x, float* y, int n)
    {
        var sum = Vector512<float>.Zero;
        for (int i = 0; i < n; i += 16)
            sum = Vector512.FusedMultiplyAdd(Vector512.Load(x + i), Vector512.Load(y + i), sum);
        return Vector512.Sum(sum);
    }

    /// <summary>t[c·ld + j] = x[j·row + c] for j &lt; n, c &lt; width; zeros for j in [n, ld).</summary>
    public static void Transpose(float* x, long row, int n, int width, float* t, int ld)
    {
        for (int c = 0; c < width; c++)
        {
            float* dst = t + ((long)c * ld), src = x + c;
            for (int j = 0; j < n; j++) dst[j] = src[j * row];
            for (int j = n; j < ld; j++) dst[j] = 0f;
        }
    }

    private static void Zero(float* s, int from, int end) => new Span<float>(s + from, Math.Max(0, end - from)).Clear();
}
