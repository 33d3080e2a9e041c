using System.Buffers;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// A table's gradient from the parts a data-parallel step's streams wrote (<see cref="GradientStream"/>): row by row, the sum of
/// the parts in stream order (part 0 + part 1), then either the armed AdamW step applied to the row while it is in cache (the
/// update the single-stream backward fuses into its row pass, <see cref="TableGradientPass.UpdateAll"/>) or the sum written.
/// </summary>
/// <remarks>Each row is independent and the squared norm is summed per row in row order, so the result is the same bits on any
/// thread count.</remarks>
internal static unsafe class StreamGradientSum
{
    /// <summary>Applies <paramref name="step"/> to every row of <paramref name="table"/> [rowCount, h] with the gradient
    /// Σ parts (stream order); returns the squared norm of that gradient.</summary>
    public static double UpdateAll(nint[] parts, nint table, int rowCount, int h, BlockedTableGradient.FusedStep step)
    {
        var squares = ArrayPool<double>.Shared.Rent(rowCount);
        KernelParallel.For(rowCount, 4L * h * (parts.Length + 3), (start, end) =>
        {
            var row = new float[h];
            fixed (float* g = row)
            {
                for (int r = start; r < end; r++)
                {
                    long o = (long)r * h;
                    squares[r] = SumRow(parts, o, g, h);
                    if (step.Bf16)                                               // the optimizer's own bf16 step: same index and salt
                        Bf16Moments.UpdateRow((float*)table + o, g, (ushort*)step.ExpAvg + o, (ushort*)step.ExpAvgSq + o, h, step.Coefficients, o, step.Salt);
                    else
                        AdamWKernel.UpdateRow((float*)table + o, g, (float*)step.ExpAvg + o, (float*)step.ExpAvgSq + o, h, step.Coefficients);
                }
            }
        });
        return SumInOrder(squares, rowCount);
    }

    /// <summary>Writes Σ parts (stream order) into <paramref name="target"/> [rowCount, h]; returns its squared norm.</summary>
    public static double WriteAll(nint[] parts, nint target, int rowCount, int h)
    {
        var squares = ArrayPool<double>.Shared.Rent(rowCount);
        KernelParallel.For(rowCount, 4L * h * (parts.Length + 1), (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                long o = (long)r * h;
                squares[r] = SumRow(parts, o, (float*)target + o, h);
            }
        });
        return SumInOrder(squares, rowCount);
    }

    /// <summary>g = parts[0][o..] + parts[1][o..] + … over h floats, in part order; returns ‖g‖² (fp32 dot, as a double).</summary>
    private static double SumRow(nint[] parts, long o, float* g, int h)
    {
        Buffer.MemoryCopy((float*)parts[0] + o, g, (long)h * sizeof(float), (long)h * sizeof(float));
        for (int p = 1; p < parts.Length; p++)
            RowKernels.Add((float*)parts[p] + o, g, h);
        return RowKernels.Dot(g, g, h);
    }

    /// <summary>Σ values[0..count) in index order, then returns the pooled array.</summary>
    private static double SumInOrder(double[] values, int count)
    {
        double total = 0;
        for (int i = 0; i < count; i++)
            total += values[i];
        ArrayPool<double>.Shared.Return(values);
        return total;
    }
}
