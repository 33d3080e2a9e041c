using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// An int8 row-wise copy of an fp32 weight matrix [rows, cols] for bandwidth-lean inference (issue 16, item 4): a
/// quarter of the bytes a decode step streams. Symmetric, one fp32 scale per row: s = max |w| / 127 over the row and
/// q = round(w / s) (to nearest, ties to even) in [−127, 127], so |w − s·q| ≤ s / 2. The kernels widen q to fp32 in
/// registers, accumulate in fp32 and apply s once per row (GEMV) or fold it into the row's weight (gather). A snapshot:
/// it does not follow later changes of the source weight.
/// </summary>
internal sealed unsafe class Int8Matrix
{
    private readonly sbyte[] values;
    private readonly float[] scales;

    private Int8Matrix(sbyte[] values, float[] scales, int rows, int columns) =>
        (this.values, this.scales, Rows, Columns) = (values, scales, rows, columns);

    /// <summary>Rows of the matrix.</summary>
    public int Rows { get; }

    /// <summary>Columns of the matrix.</summary>
    public int Columns { get; }

    /// <summary>The quantised values, row-major; pinned, so the address never changes.</summary>
    public sbyte* Pointer => (sbyte*)Unsafe.AsPointer(ref values[0]);

    /// <summary>One scale per row; pinned.</summary>
    public float* Scales => (float*)Unsafe.AsPointer(ref scales[0]);

    /// <summary>The scale of row <paramref name="row"/>.</summary>
    public float Scale(int row) => scales[row];

    /// <summary>The stored value at (<paramref name="row"/>, <paramref name="column"/>), widened: s · q.</summary>
    public float this[int row, int column] => scales[row] * values[((long)row * Columns) + column];

    /// <summary>Quantises a contiguous CPU fp32 matrix [rows, cols], rows in parallel.</summary>
    /// <exception cref="ArgumentException">Not a contiguous CPU float32 matrix, or a value that is NaN or infinite.</exception>
    public static Int8Matrix From(Tensor weight)
    {
        if (!TensorMemory.IsCpuFloat32(weight) || weight.dim() != 2 || !weight.is_contiguous() || weight.shape[0] == 0 || weight.shape[1] == 0)
            throw new ArgumentException($"An int8 copy needs a non-empty contiguous CPU float32 matrix, got {weight.dtype} [{string.Join(", ", weight.shape)}] on {weight.device_type}.", nameof(weight));
        int rows = (int)weight.shape[0], columns = (int)weight.shape[1];
        var values = GC.AllocateUninitializedArray<sbyte>(checked(rows * columns), pinned: true);
        var scales = GC.AllocateArray<float>(rows, pinned: true);
        nint source = (nint)TensorMemory.Floats(weight), target = (nint)Unsafe.AsPointer(ref values[0]);
        HugePages.Advise((void*)target, values.Length);                    // before the first write: faulted in huge
        int badRow = -1;
        KernelParallel.For(rows, columns, (first, last) =>
        {
            for (int r = first; r < last; r++)
            {
                float* row = (float*)source + ((long)r * columns);
                float max = 0f;
                for (int c = 0; c < columns; c++)
                {
                    if (!float.IsFinite(row[c]))
                    {
                        Volatile.Write(ref badRow, r);
                        return;
                    }
                    max = Math.Max(max, Math.Abs(row[c]));
                }
                scales[r] = max / 127f;
                Quantise(row, columns, max, (sbyte*)target + ((long)r * columns));
            }
        });
        if (badRow >= 0)
            throw new ArgumentException($"An int8 copy needs finite weights; row {badRow} of the [{rows}, {columns}] matrix holds NaN or ±∞. " +
                "Train or load a model with finite weights (NaN usually means training diverged).", nameof(weight));
        return new Int8Matrix(values, scales, rows, columns);
    }

    /// <summary>q = round(127 · w / max) for one row whose largest |value| is <paramref name="max"/> (0: all zero).</summary>
    private static void Quantise(float* row, int columns, float max, sbyte* q)
    {
        float inverse = max > 0f ? 127f / max : 0f;
        for (int c = 0; c < columns; c++)
            q[c] = (sbyte)Math.Clamp(MathF.Round(row[c] * inverse), -127f, 127f);
    }
}
