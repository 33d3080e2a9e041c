using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// A bf16 copy of an fp32 weight matrix [rows, cols] for bandwidth-lean inference (issue 16, item 4): half the bytes
/// a decode step streams. Each value is rounded to the nearest bf16 (ties to even), so it keeps fp32's range and 8
/// significant bits; the kernels widen it back to fp32 and accumulate in fp32. A snapshot: it does not follow later
/// changes of the source weight.
/// </summary>
internal sealed unsafe class Bf16Matrix
{
    private readonly ushort[] values;

    private Bf16Matrix(ushort[] values, int rows, int columns) => (this.values, Rows, Columns) = (values, rows, columns);

    /// <summary>Rows of the matrix.</summary>
    public int Rows { get; }

    /// <summary>Columns of the matrix.</summary>
    public int Columns { get; }

    /// <summary>The values, row-major; pinned, so the address never changes.</summary>
    public ushort* Pointer => (ushort*)Unsafe.AsPointer(ref values[0]);

    /// <summary>Rounds a contiguous CPU fp32 matrix [rows, cols] to bf16, rows in parallel.</summary>
    public static Bf16Matrix From(Tensor weight)
    {
        if (!TensorMemory.IsCpuFloat32(weight) || weight.dim() != 2 || !weight.is_contiguous())
            throw new ArgumentException($"A bf16 copy needs a contiguous CPU float32 matrix, got {weight.dtype} [{string.Join(", ", weight.shape)}] on {weight.device_type}.", nameof(weight));
        int rows = (int)weight.shape[0], columns = (int)weight.shape[1];
        var values = GC.AllocateUninitializedArray<ushort>(checked(rows * columns), pinned: true);
        if (values.Length == 0)
            return new Bf16Matrix(values, rows, columns);
        nint source = (nint)TensorMemory.Floats(weight), target = (nint)Unsafe.AsPointer(ref values[0]);
        HugePages.Advise((void*)target, 2L * values.Length);               // before the first write: faulted in huge
        KernelParallel.For(rows, columns, (first, last) =>
        {
            for (long i = (long)first * columns, end = (long)last * columns; i < end; i++)
                ((ushort*)target)[i] = Round(((float*)source)[i]);
        });
        return new Bf16Matrix(values, rows, columns);
    }

    /// <summary>bf16 → fp32 (exact).</summary>
    public static float ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>fp32 → bf16, round to nearest, ties to even (finite inputs; NaN stays NaN).</summary>
    public static ushort Round(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
            return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
}
