using System.Buffers;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The row pass of <see cref="TableGradientPass"/> with the fused AdamW step, walked one 128-column slice at a time: each
/// slice is a pass over every table row that reads only that slice of the hits' ∂L/∂y rows (N × 512 bytes, 1 MB at
/// N = 2048), and the workers take whole slices, so each core's L2 holds its own slice instead of both cores cycling the
/// whole [N, h] matrix through theirs (<see cref="KernelSettings.ColumnSliceRowPass"/>).
/// </summary>
/// <remarks>
/// The same bits as the row-by-row pass: a slice is exactly one of <see cref="RowGradientKernel"/>'s 128-column tiles, with
/// the same multiply-adds over the same hits in token order; each tile's inner product goes to a per-slice array and is
/// added to ∂L/∂w after the pass, slices ascending, the order in which the tiles of a row add theirs; a row's squared norm
/// sums its tiles' shares in the same order; AdamW is elementwise with the noise of each element's own index, and a
/// slice's inner products read the table's slice before the slice's update.
/// </remarks>
internal static unsafe class ColumnSlicePass
{
    private const int Slice = 128;

    /// <summary>Whether the pass serves <paramref name="pass"/>: the switch on, whole 128-column tiles (at least two), the
    /// fp32 tile kernel (<see cref="TableGradientPass.RowPass.CanTile"/>).</summary>
    public static bool Applies(TableGradientPass.RowPass pass) =>
        KernelSettings.Current.ColumnSliceRowPass && pass.CanTile && pass.Width >= 2 * Slice;

    /// <summary><see cref="TableGradientPass.UpdateAll"/> slice by slice; returns the gradient's squared norm, the same bits.</summary>
    public static double Update(TableGradientPass.RowPass pass, int rowCount, BlockedTableGradient.FusedStep step)
    {
        int h = pass.Width, slices = h / Slice, pairs = pass.Hits.Pairs;
        var dots = ArrayPool<float>.Shared.Rent(slices * pairs);
        var tileSquares = ArrayPool<float>.Shared.Rent(slices * rowCount);
        Array.Clear(dots, 0, slices * pairs);
        fixed (float* dotsPtr = dots, squaresPtr = tileSquares)
        {
            nint d = (nint)dotsPtr, q = (nint)squaresPtr;
            KernelParallel.For(slices, (long)rowCount * Slice * (1L + (pairs / Math.Max(1, rowCount))), (first, last) =>
            {
                for (int s = first; s < last; s++)
                    UpdateSlice(pass, rowCount, step, s * Slice, (float*)d + ((long)s * pairs), (float*)q + ((long)s * rowCount));
            });
            AddDots(pass, (float*)d, slices, pairs);
            ArrayPool<float>.Shared.Return(dots);
            ArrayPool<float>.Shared.Return(tileSquares);
            return SumSquares((float*)q, slices, rowCount);
        }
    }

    /// <summary>Columns [c, c + 128) of every row: gradient tile, inner products into <paramref name="dots"/>, AdamW step.</summary>
    private static void UpdateSlice(TableGradientPass.RowPass pass, int rowCount, BlockedTableGradient.FusedStep step, int c, float* dots,
        float* squares)
    {
        int h = pass.Width;
        float* g = stackalloc float[Slice + 16];
        g = (float*)(((nint)g + 63) & ~(nint)63);
        var slicePass = pass with { WeightGradient = (nint)dots };
        bool prefetch = pass.Prefetching;
        int ahead = Sse.IsSupported && KernelSettings.Current.PrefetchUpdateRows ? TableGradientPass.UpdatePrefetchAhead : 0;
        for (int r = 0; r < rowCount; r++)
        {
            if (prefetch && r + 1 < rowCount)
                slicePass.Prefetch(r + 1, c);
            if (ahead > 0 && r + ahead < rowCount)
                PrefetchSlice(pass, step, ((long)(r + ahead) * h) + c);
            if (pass.HitCount(r) == 0)
            {
                new Span<float>(g, Slice).Clear();
                squares[r] = 0f;
            }
            else
                squares[r] = slicePass.WriteTile(r, c, g - c);
            long o = ((long)r * h) + c;
            if (step.Bf16)
                Bf16Moments.UpdateRow((float*)pass.Table + o, g, (ushort*)step.ExpAvg + o, (ushort*)step.ExpAvgSq + o, Slice, step.Coefficients, o, step.Salt);
            else
                AdamWKernel.UpdateRow((float*)pass.Table + o, g, (float*)step.ExpAvg + o, (float*)step.ExpAvgSq + o, Slice, step.Coefficients);
        }
    }

    /// <summary>The table's and both moments' slice at element <paramref name="o"/>, into L2 (as <see cref="KernelSettings.PrefetchUpdateRows"/>).</summary>
    private static void PrefetchSlice(TableGradientPass.RowPass pass, BlockedTableGradient.FusedStep step, long o)
    {
        int momentBytes = step.Bf16 ? sizeof(ushort) : sizeof(float);
        RowKernels.PrefetchRow((byte*)((float*)pass.Table + o), Slice * sizeof(float), l1: false);
        RowKernels.PrefetchRow((byte*)step.ExpAvg + (o * momentBytes), Slice * momentBytes, l1: false);
        RowKernels.PrefetchRow((byte*)step.ExpAvgSq + (o * momentBytes), Slice * momentBytes, l1: false);
    }

    /// <summary>∂L/∂w[p] += each slice's inner product, slices ascending (the tiles' order within a row).</summary>
    private static void AddDots(TableGradientPass.RowPass pass, float* dots, int slices, int pairs)
    {
        float* gw = (float*)pass.WeightGradient;
        nint d = (nint)dots;
        KernelParallel.For(pairs, slices, (start, end) =>
        {
            for (int s = 0; s < slices; s++)
            {
                float* slice = (float*)d + ((long)s * pairs);
                for (int p = start; p < end; p++)
                    gw[p] += slice[p];
            }
        });
    }

    /// <summary>Σ over rows (ascending, in double) of each row's float sum of its tiles' squares (tiles ascending, from 0).</summary>
    private static double SumSquares(float* squares, int slices, int rowCount)
    {
        double total = 0;
        for (int r = 0; r < rowCount; r++)
        {
            float row = 0f;
            for (int s = 0; s < slices; s++)
                row += squares[((long)s * rowCount) + r];
            total += row;
        }
        return total;
    }
}
