using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// A probe, not a library path: <see cref="WindowAttention"/> with bf16 dot products, tried for lower-precision scoring
/// and measured no faster than the fp32 kernel as a whole (docs/benchmarks.md, "Scoring, third round"), so it left the
/// library and lives here for <c>perf scoring-bf16-probe</c>. .NET 10 has no AVX-512 BF16 intrinsics, but libtorch's
/// CPU bf16 batched GEMM goes through oneDNN, which uses <c>vdpbf16ps</c> where the CPU has it (measured ≈ 3–5× the
/// GFLOP/s of an fp32 bmm of the same shape, <c>perf scoring-bf16-probe</c>). Windows of one length are batched:
/// Q (pre-scaled by 1/√hd), K and V rounded to bf16 [W·H, L, hd] → S = Q·Kᵀ (bf16 out) → softmax in fp32 in managed code,
/// written back as bf16 probabilities → P·V (bf16 out) → widened into the fp32 output.
/// </summary>
/// <remarks>
/// Rounding: Q, K, V, the scores and the probabilities carry bf16's 8 significant bits (relative error ≤ 2⁻⁹ each), the
/// GEMMs accumulate in fp32. Windows shorter than <see cref="MinLength"/> (where a GEMM call costs more than it saves)
/// and CPUs without AVX-512 take the fp32 kernel. Deterministic for a given thread count (oneDNN's static partitioning).
/// </remarks>
internal static unsafe class Bf16WindowAttention
{
    /// <summary>Shortest window that takes the bf16 GEMMs; shorter ones take the fp32 kernel.</summary>
    public const int MinLength = 64;

    /// <summary>y = softmax(q kᵀ / √hd) v within each window [starts[w], starts[w+1]), as <see cref="WindowAttention.Run(float*, float*, float*, float*, int, int, int[], bool)"/>.</summary>
    public static void Run(float* q, float* k, float* v, float* y, int heads, int headWidth, int[] starts)
    {
        var byLength = new SortedDictionary<int, List<int>>();
        var rest = new List<int>();
        bool vector = Avx512F.IsSupported && headWidth % 16 == 0;
        for (int w = 0; w + 1 < starts.Length; w++)
        {
            int length = starts[w + 1] - starts[w];
            if (vector && length >= MinLength)
            {
                if (!byLength.TryGetValue(length, out var list)) byLength[length] = list = [];
                list.Add(w);
            }
            else if (length > 0)
                rest.Add(w);
        }
        if (rest.Count > 0)
            WindowAttention.Run(q, k, v, y, heads, headWidth, starts, rest.ToArray());
        foreach (var (length, windows) in byLength)
            SameLength(q, k, v, y, heads, headWidth, starts, length, windows.ToArray());
    }

    /// <summary>Windows of one length as three bf16 tensors [W·H, L, hd] and two batched GEMMs.</summary>
    private static void SameLength(float* q, float* k, float* v, float* y, int heads, int headWidth, int[] starts, int length, int[] windows)
    {
        int batch = windows.Length * heads;
        using var scope = NewDisposeScope();
        var queries = empty([batch, length, headWidth], ScalarType.BFloat16);
        var keys = empty([batch, length, headWidth], ScalarType.BFloat16);
        var values = empty([batch, length, headWidth], ScalarType.BFloat16);
        nint qa = (nint)q, ka = (nint)k, va = (nint)v, ya = (nint)y;
        nint qb = (nint)TensorMemory.Address(queries), kb = (nint)TensorMemory.Address(keys), vb = (nint)TensorMemory.Address(values);
        float scale = 1f / MathF.Sqrt(headWidth);
        KernelParallel.For(batch, 3L * length * headWidth, (first, last) =>
            Pack((float*)qa, (float*)ka, (float*)va, (ushort*)qb, (ushort*)kb, (ushort*)vb, heads, headWidth, starts, windows, length, scale, first, last));
        var scores = queries.bmm(keys.transpose(1, 2));                          // [W·H, L, L] bf16
        nint sa = (nint)TensorMemory.Address(scores);
        KernelParallel.For(batch * length, 8L * length, (first, last) => SoftmaxRows((ushort*)sa, length, first, last));
        var attended = scores.bmm(values);                                        // [W·H, L, hd] bf16
        nint oa = (nint)TensorMemory.Address(attended);
        KernelParallel.For(batch, (long)length * headWidth, (first, last) =>
            Unpack((ushort*)oa, (float*)ya, heads, headWidth, starts, windows, length, first, last));
    }

    /// <summary>Items [first, last) of (window, head): the head's Q (times <paramref name="scale"/>), K and V rows rounded
    /// into [item, L, hd].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Pack(float* q, float* k, float* v, ushort* qb, ushort* kb, ushort* vb, int heads, int headWidth, int[] starts, int[] windows,
        int length, float scale, int first, int last)
    {
        int width = heads * headWidth;
        for (int item = first; item < last; item++)
        {
            long source = ((long)starts[windows[item / heads]] * width) + ((item % heads) * headWidth);
            long target = (long)item * length * headWidth;
            for (int t = 0; t < length; t++, source += width, target += headWidth)
            {
                Round(q + source, scale, qb + target, headWidth);
                Round(k + source, 1f, kb + target, headWidth);
                Round(v + source, 1f, vb + target, headWidth);
            }
        }
    }

    /// <summary>Score rows [first, last) of length L → probabilities, in place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SoftmaxRows(ushort* scores, int length, int first, int last)
    {
        float* row = stackalloc float[(length + 15) / 16 * 16];
        for (long r = first; r < last; r++)
            Softmax(scores + (r * length), length, row);
    }

    /// <summary>Items [first, last) of (window, head): the bf16 output [item, L, hd] widened into y's token-major rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Unpack(ushort* o, float* y, int heads, int headWidth, int[] starts, int[] windows, int length, int first, int last)
    {
        int width = heads * headWidth;
        for (int item = first; item < last; item++)
        {
            long target = ((long)starts[windows[item / heads]] * width) + ((item % heads) * headWidth);
            long source = (long)item * length * headWidth;
            for (int t = 0; t < length; t++, source += headWidth, target += width)
                Widen(o + source, y + target, headWidth);
        }
    }

    /// <summary>dst[i] = bf16(src[i] · scale), round to nearest, ties to even (as <see cref="Bf16Matrix.Round"/> for finite
    /// values); n a multiple of 16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Round(float* src, float scale, ushort* dst, int n)
    {
        var s = Vector512.Create(scale);
        for (int i = 0; i < n; i += 16)
            Avx512F.ConvertToVector256UInt16(RoundBits(Vector512.Load(src + i) * s)).Store(dst + i);
    }

    /// <summary>The bf16 bits of 16 finite floats in the low halves of 16 lanes, round to nearest, ties to even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> RoundBits(Vector512<float> x)
    {
        var bits = x.AsUInt32();
        return (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) >> 16;
    }

    /// <summary>dst[i] = src[i] widened to fp32 (exact); n a multiple of 16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Widen(ushort* src, float* dst, int n)
    {
        for (int i = 0; i < n; i += 16)
            (Avx512F.ConvertToVector512UInt32(Vector256.Load(src + i)) << 16).AsSingle().Store(dst + i);
    }

    /// <summary>One row of bf16 scores → bf16 probabilities in place: widened into <paramref name="row"/> (padded to 16 with
    /// −∞), max, exp (<see cref="WindowAttention.Exp512"/>), sum and normalise in fp32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Softmax(ushort* scores, int length, float* row)
    {
        int padded = (length + 15) / 16 * 16, whole = length / 16 * 16;
        for (int j = 0; j < whole; j += 16)
            (Avx512F.ConvertToVector512UInt32(Vector256.Load(scores + j)) << 16).AsSingle().Store(row + j);
        for (int j = whole; j < padded; j++)
            row[j] = j < length ? Bf16Matrix.ToFloat(scores[j]) : float.NegativeInfinity;
        var max = Vector512.Create(float.NegativeInfinity);
        for (int j = 0; j < padded; j += 16)
            max = Vector512.Max(max, Vector512.Load(row + j));
        var top = Vector512.Create(MaxOf(max));
        var sum = Vector512<float>.Zero;
        for (int j = 0; j < padded; j += 16)
        {
            var e = WindowAttention.Exp512(Vector512.Load(row + j) - top);          // −∞ → 0
            e.Store(row + j);
            sum += e;
        }
        var inverse = Vector512.Create(1f / Vector512.Sum(sum));
        for (int j = 0; j < whole; j += 16)
            Avx512F.ConvertToVector256UInt16(RoundBits(Vector512.Load(row + j) * inverse)).Store(scores + j);
        for (int j = whole; j < length; j++)
            scores[j] = Bf16Matrix.Round(row[j] * inverse.ToScalar());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxOf(Vector512<float> v)
    {
        var m = Vector256.Max(v.GetLower(), v.GetUpper());
        var n = Vector128.Max(m.GetLower(), m.GetUpper());
        return MathF.Max(MathF.Max(n[0], n[1]), MathF.Max(n[2], n[3]));
    }
}
