using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The row pass (<see cref="RowGradientKernel"/>) walked band by band, so that the ∂L/∂y columns a band needs for all N tokens
/// stay in a core's L2 (<see cref="KernelSettings.BandedRowPass"/>): ∂L/∂y is copied once into band-major order [h/64][N][64],
/// and every table row is walked once per 64-column band instead of once. The same bits as the row pass.
/// </summary>
/// <remarks>
/// <para>A band is half of a 128-column tile by lanes: band (t, s) holds lanes 8s…8s+7 of the tile's eight 16-column vectors
/// (columns 128t + 16k + 8s + l, k, l &lt; 8). Every operation of <see cref="RowGradientKernel"/>'s tile is lane by lane up to
/// its horizontal sum (<see cref="RowGradientKernel.TreeSum"/>), whose tree adds lanes 0–7 into one value H₀ = Q₀ + Q₁ and lanes
/// 8–15 into H₁ = Q₂ + Q₃ before it returns H₀ + H₁. So the band s = 0 pass keeps each hit's H₀ (4 bytes a hit), and the s = 1
/// pass adds H₀ + H₁ to ∂L/∂w, in ascending tile order as the row pass does; the gradient sums are per column, and the tile's
/// squared norm is <c>Vector512.Sum</c> = Σ lanes 0–7 + Σ lanes 8–15 (.NET sums the halves on their own), taken the same way.
/// The band s = 0 pass parks its 64 gradient sums in a row-major scratch [R][64]; the s = 1 pass joins them to its own and
/// writes the tile's whole cache lines.</para>
/// <para>At N = 4096 a band is 1 MB (a core's L2), at N = 2048 512 KB. The cost: the table tile is read twice (each band pass
/// reads every line for half of it), each hit's indices and weight twice as often, and the copy of ∂L/∂y (8 MB at h = 512).</para>
/// </remarks>
internal static unsafe class BandedRowPass
{
    /// <summary>Columns a band holds.</summary>
    public const int Band = 64;

    /// <summary>Whether the banded pass can take this pass: AVX-512, whole tiles, fp32 ∂L/∂y and the weight gradient wanted.</summary>
    public static bool Applies(in TableGradientPass.RowPass pass) =>
        Avx512F.IsSupported && pass.Width % 128 == 0 && pass.GradOut16 == 0 && pass.WeightGradient != 0 && !pass.RoundDots;

    /// <summary>The working memory of one pass: band-major ∂L/∂y, each hit's first half-sum, the first bands' gradient sums and norms.</summary>
    private sealed class Scratch
    {
        public nint Bands, Halves, Sums, Norms, RowNorms;
        public long BandFloats, PairCount, RowFloats;                     // RowFloats: rows the three row arrays hold
    }

    private static Scratch? pooled;

    /// <summary>Writes every row of one table's gradient (not added) as <see cref="TableGradientPass.WriteAll"/> does, band by band;
    /// <paramref name="n"/> is ∂L/∂y's row count. Returns the squared norm, summed in row order.</summary>
    public static double WriteAll(TableGradientPass.RowPass pass, int rowCount, float* target, int n)
    {
        var s = Interlocked.Exchange(ref pooled, null) ?? new Scratch();
        try
        {
            Prepare(s, pass, rowCount, n);
            Split((float*)pass.GradOut, n, pass.Width, (float*)s.Bands);
            new Span<float>((void*)s.RowNorms, rowCount).Clear();
            for (int t = 0; t < pass.Width / 128; t++)
            {
                int tile = t;
                KernelParallel.For(rowCount, Band * (1L + (pass.Hits.Pairs / Math.Max(1, rowCount))), (start, end) =>
                {
                    for (int r = start; r < end; r++)
                    {
                        if (r + 1 < end)
                            Prefetch(pass, (float*)s.Bands + ((long)(2 * tile) * n * Band), r + 1);
                        FirstBand(pass, s, n, tile, r);
                    }
                });
                KernelParallel.For(rowCount, Band * (1L + (pass.Hits.Pairs / Math.Max(1, rowCount))), (start, end) =>
                {
                    for (int r = start; r < end; r++)
                    {
                        if (r + 1 < end)
                            Prefetch(pass, (float*)s.Bands + ((long)((2 * tile) + 1) * n * Band), r + 1);
                        SecondBand(pass, s, n, tile, r, target + ((long)r * pass.Width));
                    }
                    RowGradientKernel.Fence();
                });
            }
            double total = 0;
            float* norms = (float*)s.RowNorms;
            for (int r = 0; r < rowCount; r++)
                total += norms[r];
            return total;
        }
        finally
        {
            pooled = s;
        }
    }

    private static void Prepare(Scratch s, in TableGradientPass.RowPass pass, int rowCount, int n)
    {
        Grow(ref s.Bands, ref s.BandFloats, (long)n * pass.Width);
        Grow(ref s.Halves, ref s.PairCount, pass.Hits.Pairs);
        if (s.RowFloats >= rowCount)
            return;
        long had = s.RowFloats;
        Grow(ref s.Sums, ref had, (long)rowCount * Band);
        had = s.RowFloats;
        Grow(ref s.Norms, ref had, rowCount);
        had = s.RowFloats;
        Grow(ref s.RowNorms, ref had, rowCount);
        s.RowFloats = rowCount;
    }

    /// <summary>Makes <paramref name="p"/> hold at least <paramref name="want"/> floats, 64-byte aligned (its contents dropped).</summary>
    private static void Grow(ref nint p, ref long have, long want)
    {
        if (have >= want && p != 0)
            return;
        if (p != 0)
            NativeMemory.AlignedFree((void*)p);
        p = (nint)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, want) * sizeof(float)), 64);
        have = want;
    }

    /// <summary>Cache lines of each band row (of 4) that the pass asks for one table row ahead (a probe knob; 0 = none).</summary>
    internal static int PrefetchLines { get; set; } = 1;

    /// <summary>Asks for the first <see cref="PrefetchLines"/> lines of each of row <paramref name="r"/>'s band rows (a hint: the same results).</summary>
    private static void Prefetch(in TableGradientPass.RowPass pass, float* band, int r)
    {
        int count = pass.HitCount(r), lines = PrefetchLines;
        if (count == 0 || lines == 0 || !Sse.IsSupported)
            return;
        fixed (int* tok = &pass.Hits.Tokens[pass.Hits.Starts[r]])
        {
            for (int j = 0; j < count; j++)
            {
                byte* g = (byte*)(band + ((long)tok[j] * Band));
                for (int l = 0; l < lines; l++)
                    Sse.Prefetch0(g + (64 * l));
            }
        }
    }

    /// <summary>∂L/∂y [n, h] → bands [h/64][n][64]: band 2t + s, token i, position 8k + l = grad[i, 128t + 16k + 8s + l].</summary>
    public static void Split(float* grad, int n, int h, float* bands)
    {
        KernelParallel.For(n, h, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                float* src = grad + ((long)i * h);
                for (int b = 0; b < h / Band; b++)
                {
                    float* d = bands + ((((long)b * n) + i) * Band);
                    float* from = src + ((b >> 1) * 128) + ((b & 1) * 8);
                    for (int k = 0; k < 8; k++)
                        Vector256.Load(from + (16 * k)).Store(d + (8 * k));
                }
            }
        });
    }

    /// <summary>Row r's band (t, 0): gradient sums into the scratch row, each hit's H₀ kept, the band's share of the squared norm.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FirstBand(in TableGradientPass.RowPass pass, Scratch s, int n, int t, int r)
    {
        var hits = pass.Hits;
        int count = pass.HitCount(r);
        if (count == 0)
            return;
        int start = hits.Starts[r];
        fixed (int* tok = &hits.Tokens[start])
        fixed (float* w = &hits.Weights[start])
        {
            float* row = (float*)pass.Table + ((long)r * pass.Width) + (128 * t);
            float* band = (float*)s.Bands + ((long)(2 * t) * n * Band);
            ((float*)s.Norms)[r] = Lanes(row, band, tok, w, count, (float*)s.Halves + start, (float*)s.Sums + ((long)r * Band));
        }
    }

    /// <summary>Row r's band (t, 1): ∂L/∂w += H₀ + H₁, the tile's gradient sums written as whole lines, the row's norm updated.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SecondBand(in TableGradientPass.RowPass pass, Scratch s, int n, int t, int r, float* dst)
    {
        var hits = pass.Hits;
        int count = pass.HitCount(r);
        bool streaming = RowGradientKernel.IsStreamable(dst, pass.Width);
        float* d = dst + (128 * t);
        if (count == 0)
        {
            for (int k = 0; k < 8; k++)
                RowGradientKernel.Store(Vector512<float>.Zero, d + (16 * k), streaming);
            return;
        }
        int start = hits.Starts[r];
        fixed (int* tok = &hits.Tokens[start])
        fixed (int* pairs = &hits.PairIndex[start])
        fixed (float* w = &hits.Weights[start])
        {
            float* row = (float*)pass.Table + ((long)r * pass.Width) + (128 * t) + 8;
            float* band = (float*)s.Bands + ((long)((2 * t) + 1) * n * Band);
            float* sums = (float*)s.Sums + ((long)r * Band);
            float* halves = (float*)s.Halves + start;
            float second = SecondLanes(row, band, tok, pairs, w, count, halves, (float*)pass.WeightGradient, sums, d, streaming);
            ((float*)s.RowNorms)[r] += ((float*)s.Norms)[r] + second;
        }
    }

    /// <summary>
    /// Band s = 0 of a tile: <paramref name="row"/> points at the tile's first column; lanes 0–7 of its eight vectors are the band.
    /// Writes the 64 gradient sums to <paramref name="sums"/> and each hit's H₀ to <paramref name="halves"/>; returns Σ lanes 0–7 of the
    /// tile's squared-norm vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Lanes(float* row, float* band, int* tokens, float* w, int count, float* halves, float* sums)
    {
        Vector256<float> t0 = Vector256.Load(row), t1 = Vector256.Load(row + 16), t2 = Vector256.Load(row + 32), t3 = Vector256.Load(row + 48),
            t4 = Vector256.Load(row + 64), t5 = Vector256.Load(row + 80), t6 = Vector256.Load(row + 96), t7 = Vector256.Load(row + 112);
        Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int j = 0; j < count; j++)
        {
            float* g = band + ((long)tokens[j] * Band);
            var wj = Vector256.Create(w[j]);
            Vector256<float> g0 = Vector256.Load(g), g1 = Vector256.Load(g + 8), g2 = Vector256.Load(g + 16), g3 = Vector256.Load(g + 24),
                g4 = Vector256.Load(g + 32), g5 = Vector256.Load(g + 40), g6 = Vector256.Load(g + 48), g7 = Vector256.Load(g + 56);
            a0 = Vector256.FusedMultiplyAdd(g0, wj, a0);
            a1 = Vector256.FusedMultiplyAdd(g1, wj, a1);
            a2 = Vector256.FusedMultiplyAdd(g2, wj, a2);
            a3 = Vector256.FusedMultiplyAdd(g3, wj, a3);
            a4 = Vector256.FusedMultiplyAdd(g4, wj, a4);
            a5 = Vector256.FusedMultiplyAdd(g5, wj, a5);
            a6 = Vector256.FusedMultiplyAdd(g6, wj, a6);
            a7 = Vector256.FusedMultiplyAdd(g7, wj, a7);
            var p = Vector256.FusedMultiplyAdd(g4, t4, Vector256.FusedMultiplyAdd(g1, t1, g0 * t0));
            var q = Vector256.FusedMultiplyAdd(g5, t5, Vector256.FusedMultiplyAdd(g3, t3, g2 * t2));
            p = Vector256.FusedMultiplyAdd(g6, t6, p);
            q = Vector256.FusedMultiplyAdd(g7, t7, q);
            halves[j] = HalfSum(p + q);
        }
        a0.Store(sums);
        a1.Store(sums + 8);
        a2.Store(sums + 16);
        a3.Store(sums + 24);
        a4.Store(sums + 32);
        a5.Store(sums + 40);
        a6.Store(sums + 48);
        a7.Store(sums + 56);
        return Squares(a0, a1, a2, a3, a4, a5, a6, a7);
    }

    /// <summary>
    /// Band s = 1 of a tile: <paramref name="row"/> points at the tile's column 8. Adds H₀ + H₁ to each hit's ∂L/∂w, writes the tile's
    /// sixteen-lane gradient vectors (lanes 0–7 from <paramref name="sums"/>) to <paramref name="d"/>; returns Σ lanes 8–15 of the
    /// squared-norm vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float SecondLanes(float* row, float* band, int* tokens, int* pairs, float* w, int count, float* halves, float* gw,
        float* sums, float* d, bool streaming)
    {
        Vector256<float> t0 = Vector256.Load(row), t1 = Vector256.Load(row + 16), t2 = Vector256.Load(row + 32), t3 = Vector256.Load(row + 48),
            t4 = Vector256.Load(row + 64), t5 = Vector256.Load(row + 80), t6 = Vector256.Load(row + 96), t7 = Vector256.Load(row + 112);
        Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int j = 0; j < count; j++)
        {
            float* g = band + ((long)tokens[j] * Band);
            var wj = Vector256.Create(w[j]);
            Vector256<float> g0 = Vector256.Load(g), g1 = Vector256.Load(g + 8), g2 = Vector256.Load(g + 16), g3 = Vector256.Load(g + 24),
                g4 = Vector256.Load(g + 32), g5 = Vector256.Load(g + 40), g6 = Vector256.Load(g + 48), g7 = Vector256.Load(g + 56);
            a0 = Vector256.FusedMultiplyAdd(g0, wj, a0);
            a1 = Vector256.FusedMultiplyAdd(g1, wj, a1);
            a2 = Vector256.FusedMultiplyAdd(g2, wj, a2);
            a3 = Vector256.FusedMultiplyAdd(g3, wj, a3);
            a4 = Vector256.FusedMultiplyAdd(g4, wj, a4);
            a5 = Vector256.FusedMultiplyAdd(g5, wj, a5);
            a6 = Vector256.FusedMultiplyAdd(g6, wj, a6);
            a7 = Vector256.FusedMultiplyAdd(g7, wj, a7);
            var p = Vector256.FusedMultiplyAdd(g4, t4, Vector256.FusedMultiplyAdd(g1, t1, g0 * t0));
            var q = Vector256.FusedMultiplyAdd(g5, t5, Vector256.FusedMultiplyAdd(g3, t3, g2 * t2));
            p = Vector256.FusedMultiplyAdd(g6, t6, p);
            q = Vector256.FusedMultiplyAdd(g7, t7, q);
            gw[pairs[j]] += halves[j] + HalfSum(p + q);                       // TreeSum's last add: (Q0 + Q1) + (Q2 + Q3)
        }
        RowGradientKernel.Store(Vector512.Create(Vector256.Load(sums), a0), d, streaming);
        RowGradientKernel.Store(Vector512.Create(Vector256.Load(sums + 8), a1), d + 16, streaming);
        RowGradientKernel.Store(Vector512.Create(Vector256.Load(sums + 16), a2), d + 32, streaming);
        RowGradientKernel.Store(Vector512.Create(Vector256.Load(sums + 24), a3), d + 48, streaming);
        RowGradientKernel.Store(Vector512.Create(Vector256.Load(sums + 32), a4), d + 64, streaming);
        RowGradientKernel.Store(Vector512.Create(Vector256.Load(sums + 40), a5), d + 80, streaming);
        RowGradientKernel.Store(Vector512.Create(Vector256.Load(sums + 48), a6), d + 96, streaming);
        RowGradientKernel.Store(Vector512.Create(Vector256.Load(sums + 56), a7), d + 112, streaming);
        return Squares(a0, a1, a2, a3, a4, a5, a6, a7);
    }

    /// <summary><see cref="RowGradientKernel.StoreTile"/>'s squared norm on one half of the lanes: the same fused multiply-adds, then
    /// <c>Vector256.Sum</c>, which is how <c>Vector512.Sum</c> sums each half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Squares(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3, Vector256<float> a4,
        Vector256<float> a5, Vector256<float> a6, Vector256<float> a7)
    {
        var s0 = Vector256.FusedMultiplyAdd(a1, a1, a0 * a0);
        var s1 = Vector256.FusedMultiplyAdd(a3, a3, a2 * a2);
        s0 = Vector256.FusedMultiplyAdd(a5, a5, Vector256.FusedMultiplyAdd(a4, a4, s0));
        s1 = Vector256.FusedMultiplyAdd(a7, a7, Vector256.FusedMultiplyAdd(a6, a6, s1));
        return Vector256.Sum(s0 + s1);
    }

    /// <summary><see cref="RowGradientKernel.TreeSum"/>'s tree on eight lanes: adjacent lanes, adjacent pairs, then the two quarters
    /// (lane 0 + lane 4 of the pairs' sums): H₀ of lanes 0–7, H₁ of lanes 8–15.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float HalfSum(Vector256<float> v)
    {
        var x = Avx.Add(Avx.Permute(v, 0b10_11_00_01), v);
        x = Avx.Add(Avx.Permute(x, 0b01_00_11_10), x);
        return x.ToScalar() + x.GetUpper().ToScalar();
    }
}
