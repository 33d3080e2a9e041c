using System.Numerics;
using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Column sums of a row-major fp32 matrix [N, h] → [h] (a Memory Layer's bias gradient Σ_n ∂L/∂y[n]) in the managed
/// kernels, with the bits of libtorch's <c>x.sum(0)</c> on the CPU: each column added up over the rows in libtorch's
/// cascade order (<c>aten/src/ATen/native/cpu/SumKernel.cpp</c>, <c>multi_row_sum</c> as <c>vectorized_outer_sum</c> calls
/// it for groups of 4 × 8 columns with its AVX2 kernels). It spares the backward a torch op, whose OpenMP region wakes
/// libtorch's worker thread, which then spins on a core the next managed kernel wants (<see cref="OpenMPSpin"/>).
/// </summary>
/// <remarks>
/// <para>libtorch's order, per column: four float accumulators (levels); rows go into level 0 in runs of
/// 2^p rows (p = max(4, ⌈log₂ N⌉ / 4)); after each run level j−1 is added into level j and cleared, going one level
/// higher only while the row count is a multiple of 2^(p·j); the rows after the last whole run go into level 0, and the
/// result is level 0 + level 1 + level 2 + level 3, stored as 0 + result into the zero-filled output. Splitting the
/// columns between OpenMP threads (on multiples of 32 columns) does not change a column's order, so the result does not
/// depend on the thread count. Columns past the last whole group of 32 take libtorch's other order (<c>row_sum</c>), which
/// this kernel does not reproduce: such widths keep the torch op (<see cref="Supports"/>).</para>
/// <para>Whether this process's libtorch adds in that order (its AVX2 kernels; AVX-512 ones group 64 columns, which
/// can differ at a thread split) is checked once, against <c>sum(0)</c> on a probe matrix whose columns' bits depend on
/// the order (<see cref="MatchesTorch"/>); where it does not match, every call keeps the torch op.</para>
/// </remarks>
internal static unsafe class ColumnSums
{
    /// <summary>Columns libtorch's AVX2 kernel sums together, each in the cascade order.</summary>
    public const int Group = 32;

    private static readonly Lazy<bool> Matches = new(Probe);

    /// <summary>Whether <see cref="Sum"/> gives the bits of <c>x.sum(0)</c> for an [N, <paramref name="width"/>] fp32 matrix:
    /// the width is a multiple of <see cref="Group"/> and this process's libtorch was found to use the same order.</summary>
    public static bool Supports(int width) => width > 0 && width % Group == 0 && MatchesTorch;

    /// <summary>Whether this process's libtorch sums columns in the order <see cref="Sum"/> reproduces (probed once).</summary>
    public static bool MatchesTorch => Matches.Value;

    /// <summary>The bias gradient Σ_n g[n] of a contiguous fp32 [N, h] tensor as a new [h] tensor, by the managed kernel where
    /// <see cref="KernelSettings.ManagedBiasSums"/> is on and <see cref="Supports"/> holds, else by <c>g.sum(0)</c>: the same bits.</summary>
    public static Tensor Of(Tensor g)
    {
        int h = (int)g.shape[1];
        if (!KernelSettings.Current.ManagedBiasSums || !TensorMemory.IsCpuFloat32(g) || !g.is_contiguous() || !Supports(h)
            || g.shape[0] > int.MaxValue)
            return g.sum(0L);
        var result = empty(h, ScalarType.Float32);
        Sum(TensorMemory.Floats(g), (int)g.shape[0], h, TensorMemory.Floats(result));
        return result;
    }

    /// <summary>Most columns summed in one sweep over the rows (their accumulators on the stack: 4 levels × 2048 floats, 32 KB).</summary>
    private const int SweepColumns = 2048;

    /// <summary>out[c] = Σ_n x[n, c] in libtorch's cascade order, for a width that is a multiple of <see cref="Group"/>, on the
    /// calling thread: one sequential read of x (2 MB for a d = 256 step's ∂L/∂y), too short to pay for a fork and join.</summary>
    public static void Sum(float* x, int n, int h, float* output)
    {
        for (int c = 0; c < h; c += SweepColumns)
            Sweep(x + c, n, h, Math.Min(SweepColumns, h - c), output + c);
    }

    /// <summary>Columns [0, <paramref name="width"/>) at <paramref name="x"/> (row stride <paramref name="h"/>), row by row: libtorch's
    /// <c>multi_row_sum</c> with four levels for every column at once. Its control flow depends only on the row index, and lanes are
    /// independent, so each column gets exactly the scalar order.</summary>
    private static void Sweep(float* x, int n, int h, int width, float* output)
    {
        const int Levels = 4;
        int vectors = width / 8, power = Math.Max(4, CeilLog2(n) / Levels), step = 1 << power, mask = step - 1;
        var acc = stackalloc Vector256<float>[Levels * vectors];                  // acc[level * vectors + v]
        for (int a = 0; a < Levels * vectors; a++)
            acc[a] = Vector256<float>.Zero;
        int i = 0;
        while (i + step <= n)
        {
            for (int j = 0; j < step; j++, i++)
                AddRow(acc, x + ((long)i * h), vectors);
            for (int level = 1; level < Levels; level++)
            {
                Vector256<float>* lower = acc + ((level - 1) * vectors), upper = acc + (level * vectors);
                for (int v = 0; v < vectors; v++)
                {
                    upper[v] += lower[v];
                    lower[v] = Vector256<float>.Zero;
                }
                if ((i & (mask << (level * power))) != 0)
                    break;
            }
        }
        for (; i < n; i++)
            AddRow(acc, x + ((long)i * h), vectors);
        for (int level = 1; level < Levels; level++)
        {
            for (int v = 0; v < vectors; v++)
                acc[v] += acc[(level * vectors) + v];
        }
        for (int v = 0; v < vectors; v++)
            (Vector256<float>.Zero + acc[v]).Store(output + (v * 8));            // the output starts at 0 (so −0 becomes +0)
    }

    private static void AddRow(Vector256<float>* level0, float* row, int vectors)
    {
        for (int v = 0; v < vectors; v++)
            level0[v] += Vector256.Load(row + (v * 8));
    }

    /// <summary>libtorch's <c>CeilLog2</c>: 1 for x ≤ 2, else ⌈log₂ x⌉.</summary>
    internal static int CeilLog2(int x) => x <= 2 ? 1 : 32 - BitOperations.LeadingZeroCount((uint)(x - 1));

    /// <summary>Compares <see cref="Sum"/> with <c>sum(0)</c> on matrices whose column sums depend on the order of the adds
    /// (values of mixed magnitudes and signs, row counts that leave partial runs and levels).</summary>
    private static bool Probe()
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(12345);
        using Scalar spread = 4.0;                                                // magnitudes e^(±4σ): the order shows in the bits
        foreach (var (n, h) in new[] { (2048, 64), (1000, 96), (37, 32), (5000, 32) })
        {
            var x = (randn(n, h, generator: generator) * exp(randn(n, h, generator: generator).mul(spread))).contiguous();
            var expected = x.sum(0L).contiguous();
            var actual = new float[h];
            fixed (float* a = actual)
                Sum(TensorMemory.Floats(x), n, h, a);
            var e = expected.data<float>().ToArray();
            for (int c = 0; c < h; c++)
            {
                if (BitConverter.SingleToInt32Bits(e[c]) != BitConverter.SingleToInt32Bits(actual[c]))
                    return false;
            }
        }
        return true;
    }
}
