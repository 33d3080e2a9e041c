using System.Buffers;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The row pass (<see cref="TableGradientPass.WriteAll"/>) with its loops swapped: each thread walks its rows once per 128-column band
/// instead of once, so that while it walks one band it reads only that band of the ∂L/∂y rows (N × 512 bytes: 2 MB at N = 4096, a core's
/// L2 on the Intel Xeon, where the whole [N, h] matrix of 8 MB is served from the mesh L3 at ≈ 140 ns a row). Same bits: every gradient
/// value and every band's inner product is the same chain of operations (<see cref="RowGradientKernel.Band512"/>); each hit's band
/// products wait in a per-hit scratch and are added to the weight gradient in column order after the last band, as the row-by-row pass
/// adds them; a row's squared norm adds its bands in column order in a float, as <see cref="RowGradientKernel.Run"/> does.
/// </summary>
internal static unsafe class ColumnBandRowPass
{
    /// <summary>Columns a band holds: <see cref="RowGradientKernel"/>'s AVX-512 tile.</summary>
    public const int BandWidth = 128;

    /// <summary>Whether <paramref name="pass"/> can take this path: AVX-512, a width of whole bands (more than one), fp32 ∂L/∂y and
    /// table, and a weight gradient to add to (the other cases keep <see cref="TableGradientPass.WriteAll"/>).</summary>
    public static bool Supports(TableGradientPass.RowPass pass) =>
        Vector512.IsHardwareAccelerated && pass.Width % BandWidth == 0 && pass.Width > BandWidth && pass.WeightGradient != 0
        && pass.GradOut16 == 0 && !pass.RoundDots;

    /// <summary>Rows a thread serves together: their band sums wait in a scratch of GroupRows × 512 bytes (512 KB) between token blocks.</summary>
    internal static int GroupRows { get; set; } = 1024;

    /// <summary>Tokens a block holds: the band of their ∂L/∂y rows is TokenBlock × 512 bytes (512 KB at 1,024).</summary>
    internal static int TokenBlock { get; set; } = 1024;

    /// <summary>Writes every row of one table's gradient into <paramref name="target"/> (not accumulating); returns its squared norm,
    /// summed as <see cref="TableGradientPass.WriteAll"/> sums it.</summary>
    /// <param name="pass">The table, ∂L/∂y, hits and weight gradient.</param>
    /// <param name="rowCount">The table's rows.</param>
    /// <param name="target">The gradient [rowCount, h].</param>
    /// <param name="tokens">N, the rows of ∂L/∂y.</param>
    public static double WriteAll(TableGradientPass.RowPass pass, int rowCount, Tensor target, int tokens)
    {
        var csr = pass.Hits;
        int h = pass.Width, bands = h / BandWidth, groupRows = Math.Max(1, GroupRows), tokenBlock = Math.Max(1, TokenBlock);
        int groups = (rowCount + groupRows - 1) / groupRows, blocks = Math.Max(1, (tokens + tokenBlock - 1) / tokenBlock);
        nint gtPtr = (nint)TensorMemory.Floats(target);
        var squares = ArrayPool<double>.Shared.Rent(rowCount);
        var dots = ArrayPool<float>.Shared.Rent(Math.Max(1, csr.Pairs * bands));      // [pairs in row order][bands]
        try
        {
            KernelParallel.For(groups, (long)groupRows * h * (1L + (csr.Pairs / Math.Max(1, rowCount))), (first, last) =>
            {
                var rowSquares = new float[groupRows];
                var cursor = new int[groupRows];
                float* partial = TiledGather.ThreadScratch((long)groupRows * BandWidth);
                bool prefetch = pass.Prefetching;
                bool streaming = RowGradientKernel.IsStreamable((float*)gtPtr, h);
                fixed (int* tok = csr.Tokens, pairs = csr.PairIndex, starts = csr.Starts, cur = cursor)
                fixed (float* weights = csr.Weights, d = dots, sq = rowSquares)
                {
                    for (int group = first; group < last; group++)
                    {
                        int lo = group * groupRows, hi = Math.Min(rowCount, lo + groupRows);
                        Array.Clear(rowSquares);
                        for (int band = 0; band < bands; band++)
                        {
                            int c = band * BandWidth;
                            for (int r = lo; r < hi; r++)
                                cur[r - lo] = pass.HitCount(r) == 0 ? 0 : starts[r];
                            for (int block = 0; block < blocks; block++)
                            {
                                int end = (block + 1) * tokenBlock;
                                bool firstBlock = block == 0, lastBlock = block == blocks - 1;
                                for (int r = lo; r < hi; r++)
                                {
                                    int count = pass.HitCount(r);
                                    float* dst = (float*)gtPtr + ((long)r * h);
                                    if (count == 0)
                                    {
                                        if (lastBlock)
                                            ClearBand(dst + c, streaming);
                                        continue;
                                    }
                                    int s = cur[r - lo], e = s, rowEnd = starts[r] + count;
                                    while (e < rowEnd && tok[e] < end)
                                        e++;
                                    if (prefetch && r + 1 < hi)
                                        PrefetchBand(pass, tok, cur[r + 1 - lo], starts[r + 1] + pass.HitCount(r + 1), end, c);
                                    sq[r - lo] += RowGradientKernel.Band512((float*)pass.Table + ((long)r * h), (float*)pass.GradOut, h, c,
                                        tok + s, weights + s, e - s, partial + ((long)(r - lo) * BandWidth), firstBlock, lastBlock, dst,
                                        d + ((long)s * bands) + band, bands, streaming);
                                    cur[r - lo] = e;
                                }
                            }
                        }
                        float* gw = (float*)pass.WeightGradient;
                        for (int r = lo; r < hi; r++)
                        {
                            int count = pass.HitCount(r), s = count == 0 ? 0 : starts[r];
                            for (int j = s; j < s + count; j++)
                            {
                                float* hitDots = d + ((long)j * bands);
                                for (int band = 0; band < bands; band++)
                                    gw[pairs[j]] += hitDots[band];
                            }
                            squares[r] = sq[r - lo];
                        }
                    }
                }
                RowGradientKernel.Fence();
            });
            double total = 0;
            for (int r = 0; r < rowCount; r++)
                total += squares[r];
            return total;
        }
        finally
        {
            ArrayPool<double>.Shared.Return(squares);
            ArrayPool<float>.Shared.Return(dots);
        }
    }

    /// <summary>The first line of this band of each of the next row's ∂L/∂y rows in the current token block, into L1.</summary>
    private static void PrefetchBand(TableGradientPass.RowPass pass, int* tokens, int from, int rowEnd, int blockEnd, int c)
    {
        for (int j = from; j < rowEnd && tokens[j] < blockEnd; j++)
            Sse.Prefetch0((byte*)((float*)pass.GradOut + ((long)tokens[j] * pass.Width) + c));
    }

    private static void ClearBand(float* dst, bool streaming)
    {
        for (int i = 0; i < BandWidth; i += 16)
            RowGradientKernel.Store(Vector512<float>.Zero, dst + i, streaming);
    }
}
