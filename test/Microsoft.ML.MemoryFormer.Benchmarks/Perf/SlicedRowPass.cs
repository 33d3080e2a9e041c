using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

using Microsoft.ML.MemoryFormer.Layers.Kernels;
using System.Runtime.InteropServices;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// A probe kernel (not in the library; <c>perf probe-rowpass</c>): the row pass (<see cref="TableGradientPass.WriteAll"/>)
/// one 32-column slice at a time, so that the slice of ∂L/∂y every hit reads ([N, 32]: 512 KB at N = 4096) stays in the
/// thread's L2 while all its table rows are served. It lost (issue 16, "Memory Layer, fourth round" in docs/benchmarks.md):
/// each slice pass reads 128 bytes of every 2 KB table row and writes 128 bytes of every gradient row, and those strided
/// accesses cost what the resident ∂L/∂y saves.
/// </summary>
/// <remarks>
/// <para>The row pass reads each hit's whole ∂L/∂y row: N·K random 2 KB rows (537 MB at d = 512, N = 4096) from an [N, h]
/// matrix that does not fit L2, because every chunk's 256 rows are hit by all N tokens. Here ∂L/∂y is first copied into
/// slice-major order [h/32][N][32] (8 MB, read once); each thread then walks its block of table rows once per slice,
/// and the slice stays in its L2 while it does.</para>
/// <para>The table gradient is the same bits as the row pass: each column is the same fused multiply-add chain over the
/// row's hits in ascending token order, starting from zero. The weight gradient and the squared norm are summed in a
/// different order (per 32-column slice, slices ascending, instead of per 128-column tile): the same values up to
/// rounding, and still independent of the thread count (every hit's and every row's sums are taken by one thread, slices
/// in order).</para>
/// </remarks>
internal static unsafe class SlicedRowPass
{
    /// <summary>Columns per slice: two AVX-512 registers.</summary>
    public const int SliceWidth = 32;

    /// <summary>Table rows a worker walks per slice: their hits' indices and weight-gradient sums stay in cache across slices.</summary>
    internal static int BlockRows { get; set; } = 4096;

    /// <summary>Whether the kernel runs for a table of width <paramref name="h"/>: AVX-512 and whole slices.</summary>
    public static bool Applies(int h) => Avx512F.IsSupported && Vector512.IsHardwareAccelerated && h % SliceWidth == 0;

    /// <summary>
    /// Writes every row of one table's gradient into <paramref name="target"/> [rowCount, h] and, when the pass has one,
    /// adds each hit's inner product to its weight gradient; returns the squared norm of the gradient.
    /// </summary>
    /// <param name="pass">The row pass: hits, table, ∂L/∂y [<paramref name="n"/>, h], weight gradient or 0.</param>
    /// <param name="n">Tokens N (rows of ∂L/∂y).</param>
    /// <param name="rowCount">Rows of the table and of <paramref name="target"/>.</param>
    /// <param name="target">The gradient [rowCount, h], overwritten.</param>
    public static double WriteAll(TableGradientPass.RowPass pass, int n, int rowCount, float* target)
    {
        int h = pass.Width, slices = h / SliceWidth;
        nint buffer = (nint)NativeMemory.AlignedAlloc((nuint)((long)n * h * sizeof(float)), 64);
        var squares = ArrayPool<double>.Shared.Rent(rowCount);
        try
        {
            ToSlices((float*)pass.GradOut, n, h, (float*)buffer);
            int blocks = (rowCount + BlockRows - 1) / BlockRows;
            var job = new Job(pass, n, rowCount, (float*)buffer, target, squares);
            KernelParallel.For(blocks, (long)BlockRows * h * 16, (start, end) =>
            {
                var dots = ArrayPool<float>.Shared.Rent(BlockRows * 64);
                var rowSquares = new float[BlockRows];
                for (int b = start; b < end; b++)
                    Block(in job, b * BlockRows, Math.Min(rowCount, (b + 1) * BlockRows), slices, ref dots, rowSquares);
                ArrayPool<float>.Shared.Return(dots);
                RowGradientKernel.Fence();
            });
        }
        finally
        {
            NativeMemory.AlignedFree((void*)buffer);
        }
        double total = 0;
        for (int r = 0; r < rowCount; r++)
            total += squares[r];
        ArrayPool<double>.Shared.Return(squares);
        return total;
    }

    /// <summary>What every block reads and writes.</summary>
    private readonly struct Job(TableGradientPass.RowPass pass, int n, int rowCount, float* slices, float* target, double[] squares)
    {
        public readonly TableGradientPass.RowPass Pass = pass;
        public readonly int N = n, RowCount = rowCount;
        public readonly float* Slices = slices, Target = target;
        public readonly double[] Squares = squares;
    }

    /// <summary>∂L/∂y [N, h] → [h/32][N][32], parallel over tokens.</summary>
    private static void ToSlices(float* grad, int n, int h, float* slices)
    {
        nint src = (nint)grad, dst = (nint)slices;
        KernelParallel.For(n, h, (start, end) =>
        {
            for (long i = start; i < end; i++)
            {
                float* s = (float*)src + (i * h), d = (float*)dst + (i * SliceWidth);
                for (int c = 0; c < h; c += SliceWidth, d += (long)n * SliceWidth)
                {
                    Vector512.Load(s + c).Store(d);
                    Vector512.Load(s + c + 16).Store(d + 16);
                }
            }
        });
    }

    /// <summary>Rows [lo, hi): every slice in turn over all of them, then each hit's summed inner product into ∂L/∂w.</summary>
    private static void Block(in Job job, int lo, int hi, int slices, ref float[] dots, float[] rowSquares)
    {
        var hits = job.Pass.Hits;
        int h = job.Pass.Width;
        int sorted = Math.Min(hi, hits.RowCount);
        int first = lo < hits.RowCount ? hits.Starts[lo] : 0, last = sorted > lo ? hits.Starts[sorted] : first;
        if (dots.Length < last - first)
        {
            ArrayPool<float>.Shared.Return(dots);
            dots = ArrayPool<float>.Shared.Rent(last - first);
        }
        bool streaming = KernelSettings.Current.StreamingStores && ((nint)job.Target & 63) == 0 && h % 16 == 0;
        bool weightGradient = job.Pass.WeightGradient != 0;
        fixed (int* starts = hits.Starts, tokens = hits.Tokens, pairs = hits.PairIndex)
        fixed (float* weights = hits.Weights, dot = dots, sq = rowSquares)
        {
            for (int s = 0; s < slices; s++)
            {
                var slice = new Slice((float*)job.Pass.Table + (s * SliceWidth), job.Slices + ((long)s * job.N * SliceWidth), h,
                    job.Target + (s * SliceWidth), streaming, s == 0, weightGradient);
                for (int r = lo; r < hi; r++)
                {
                    int begin = r < sorted ? starts[r] : 0, count = r < sorted ? starts[r + 1] - begin : 0;
                    float rowSq = Row(in slice, r, tokens + begin, weights + begin, dot + (begin - first), count);
                    sq[r - lo] = s == 0 ? rowSq : sq[r - lo] + rowSq;
                }
            }
            if (weightGradient)
            {
                float* gw = (float*)job.Pass.WeightGradient;
                for (int j = first; j < last; j++)
                    gw[pairs[j]] += dot[j - first];
            }
            for (int r = lo; r < hi; r++)
                job.Squares[r] = sq[r - lo];
        }
    }

    /// <summary>One slice of the table, of ∂L/∂y [N][32] and of the gradient, and how it is written.</summary>
    private readonly struct Slice(float* table, float* grad, int h, float* target, bool streaming, bool first, bool dots)
    {
        public readonly float* Table = table, Grad = grad, Target = target;
        public readonly int H = h;
        public readonly bool Streaming = streaming, First = first, Dots = dots;
    }

    /// <summary>
    /// Row r's 32 columns: gradient = Σ_j w[j] · ∂L/∂y[tokens[j]] (the row pass's chain), each hit's inner product with the
    /// table's 32 columns set (first slice) or added to <paramref name="dot"/>[j]; returns the slice's squared norm.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Row(in Slice slice, int r, int* tokens, float* weights, float* dot, int count)
    {
        long o = (long)r * slice.H;
        Vector512<float> t0 = Vector512.Load(slice.Table + o), t1 = Vector512.Load(slice.Table + o + 16);
        Vector512<float> a0 = Vector512<float>.Zero, a1 = a0;
        float* grad = slice.Grad;
        int j = 0;
        if (slice.Dots)
        {
            bool first = slice.First;
            for (; j + 4 <= count; j += 4)
            {
                // Four hits: their gradient products in the chain, their four inner products summed in one shuffle network.
                float* g = grad + ((long)tokens[j] * SliceWidth);
                Vector512<float> g0 = Vector512.Load(g), g1 = Vector512.Load(g + 16);
                a0 = Vector512.FusedMultiplyAdd(g0, Vector512.Create(weights[j]), a0);
                a1 = Vector512.FusedMultiplyAdd(g1, Vector512.Create(weights[j]), a1);
                var pA = Vector512.FusedMultiplyAdd(g1, t1, g0 * t0);
                g = grad + ((long)tokens[j + 1] * SliceWidth);
                g0 = Vector512.Load(g);
                g1 = Vector512.Load(g + 16);
                a0 = Vector512.FusedMultiplyAdd(g0, Vector512.Create(weights[j + 1]), a0);
                a1 = Vector512.FusedMultiplyAdd(g1, Vector512.Create(weights[j + 1]), a1);
                var pB = Vector512.FusedMultiplyAdd(g1, t1, g0 * t0);
                g = grad + ((long)tokens[j + 2] * SliceWidth);
                g0 = Vector512.Load(g);
                g1 = Vector512.Load(g + 16);
                a0 = Vector512.FusedMultiplyAdd(g0, Vector512.Create(weights[j + 2]), a0);
                a1 = Vector512.FusedMultiplyAdd(g1, Vector512.Create(weights[j + 2]), a1);
                var pC = Vector512.FusedMultiplyAdd(g1, t1, g0 * t0);
                g = grad + ((long)tokens[j + 3] * SliceWidth);
                g0 = Vector512.Load(g);
                g1 = Vector512.Load(g + 16);
                a0 = Vector512.FusedMultiplyAdd(g0, Vector512.Create(weights[j + 3]), a0);
                a1 = Vector512.FusedMultiplyAdd(g1, Vector512.Create(weights[j + 3]), a1);
                var pD = Vector512.FusedMultiplyAdd(g1, t1, g0 * t0);
                var sums = Sum4(pA, pB, pC, pD);
                (first ? sums : sums + Vector128.Load(dot + j)).Store(dot + j);
            }
            for (; j < count; j++)
            {
                float* g = grad + ((long)tokens[j] * SliceWidth);
                Vector512<float> g0 = Vector512.Load(g), g1 = Vector512.Load(g + 16);
                a0 = Vector512.FusedMultiplyAdd(g0, Vector512.Create(weights[j]), a0);
                a1 = Vector512.FusedMultiplyAdd(g1, Vector512.Create(weights[j]), a1);
                float d = RowGradientKernel.TreeSum(Vector512.FusedMultiplyAdd(g1, t1, g0 * t0));
                dot[j] = first ? d : dot[j] + d;
            }
        }
        else
        {
            for (; j < count; j++)
            {
                float* g = grad + ((long)tokens[j] * SliceWidth);
                var wj = Vector512.Create(weights[j]);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(g), wj, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(g + 16), wj, a1);
            }
        }
        float* d0 = slice.Target + o;
        if (slice.Streaming)
        {
            a0.StoreAlignedNonTemporal(d0);
            a1.StoreAlignedNonTemporal(d0 + 16);
        }
        else
        {
            a0.Store(d0);
            a1.Store(d0 + 16);
        }
        return RowGradientKernel.TreeSum(Vector512.FusedMultiplyAdd(a1, a1, a0 * a0));
    }

    /// <summary>The sums of four vectors' 16 lanes, [ΣA, ΣB, ΣC, ΣD]: within each 128-bit lane, pairs then pairs of pairs
    /// (six shuffles for the four), then the four lanes (a fixed tree, so the same bits on every call).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        var ab = Avx512F.Shuffle(a, b, 0x88) + Avx512F.Shuffle(a, b, 0xDD);    // per lane [a0+a1, a2+a3, b0+b1, b2+b3]
        var cd = Avx512F.Shuffle(c, d, 0x88) + Avx512F.Shuffle(c, d, 0xDD);
        var x = Avx512F.Shuffle(ab, cd, 0x88) + Avx512F.Shuffle(ab, cd, 0xDD); // per lane [Σa, Σb, Σc, Σd] of its four
        var y = x.GetLower() + x.GetUpper();                                     // lanes 0 + 2, 1 + 3
        return y.GetLower() + y.GetUpper();
    }
}
