using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The LM head at decode time, logits [B, V] = x [B, d] · Wᵀ for a few rows, as a managed GEMV that streams the
/// weight [V, d] once at memory bandwidth, in fp32, bf16 (<see cref="Bf16Matrix"/>) or int8 row-wise (<see cref="Int8Matrix"/>). Only for inference on CPU fp32; training keeps <c>nn.Linear</c>.
/// </summary>
/// <remarks>
/// The vocabulary is cut into blocks of about 1 MB of weight (so B &gt; 1 re-reads a block from L2), which the
/// workers take from a shared counter: each streams contiguous memory, and a worker slowed by another process
/// does not hold up the rest. Within a block, AVX-512 takes four vocabulary rows at a time (four accumulators,
/// one load of x per four rows) and prefetches eight rows ahead. <c>perf decode-profile</c> compares it with
/// libtorch's <c>linear</c>/<c>mv</c>.
/// </remarks>
internal static class HeadGemv
{
    /// <summary>Most rows per call; above it the GEMM reuses each weight row well enough.</summary>
    public const int MaxRows = 4;

    private const long BlockBytes = 1 << 20;
    private const int PrefetchRows = 8;

    /// <summary>Widest d whose even and odd halves of x the bf16 kernel splits on the stack (2 × 32 KB).</summary>
    private const int MaxPairedWidth = 16384;

    /// <summary>True when x [B, d] and weight [V, d] take the managed kernel.</summary>
    public static bool Applies(Tensor x, Tensor weight) =>
        TorchRuntime.UseFusedKernels && !is_grad_enabled() && x.dim() == 2 && x.shape[0] <= MaxRows
        && TensorMemory.IsCpuFloat32(x) && TensorMemory.IsCpuFloat32(weight) && weight.is_contiguous();

    /// <summary>x [B, d], weight [V, d] → [B, V].</summary>
    public static unsafe Tensor Apply(Tensor x, Tensor weight)
    {
        using var scope = NewDisposeScope();
        var xc = x.contiguous();
        int b = (int)xc.shape[0], d = (int)xc.shape[1], v = (int)weight.shape[0];
        var y = empty(b, v, ScalarType.Float32);
        Compute(TensorMemory.Floats(xc), b, TensorMemory.Floats(weight), v, d, TensorMemory.Floats(y));
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>y [B, V] = x [B, d] · w [V, d]ᵀ over raw contiguous fp32 memory.</summary>
    public static unsafe void Compute(float* x, int b, float* w, int v, int d, float* y) => Compute(x, b, w, null, v, d, y);

    /// <summary>
    /// y [B, V] = x [B, d] · w [V, d]ᵀ with w in bf16 when <paramref name="w16"/> is not null (half the bytes streamed;
    /// widened to fp32, fp32 accumulation), else from the fp32 <paramref name="w"/>.
    /// </summary>
    public static unsafe void Compute(float* x, int b, float* w, ushort* w16, int v, int d, float* y) => Run(x, b, w, w16, null, null, v, d, y);

    /// <summary>
    /// y [B, V] = x [B, d] · (s ⊙ q) [V, d]ᵀ over an int8 row-wise matrix (<see cref="Int8Matrix"/>: a quarter of the fp32
    /// bytes streamed): each q widened to fp32 in registers, fp32 accumulation, the row's scale applied once to its sum.
    /// </summary>
    public static unsafe void Compute(float* x, int b, Int8Matrix w, float* y)
    {
        Run(x, b, null, null, w.Pointer, w.Scales, w.Rows, w.Columns, y);
        GC.KeepAlive(w);
    }

    /// <summary>
    /// y [B, V] = x · w [V, d]ᵀ from whichever copy is given: int8 (<paramref name="w8"/> and its row scales), else bf16
    /// (<paramref name="w16"/>), else fp32 (<paramref name="w"/>).
    /// </summary>
    private static unsafe void Run(float* x, int b, float* w, ushort* w16, sbyte* w8, float* scales, int v, int d, float* y)
    {
        nint xp = (nint)x, wp = (nint)w, w16p = (nint)w16, w8p = (nint)w8, sp = (nint)scales, yp = (nint)y;
        int blockRows = (int)Math.Max(4, BlockBytes / (4L * d) / 4 * 4);
        int blocks = (v + blockRows - 1) / blockRows, next = 0;
        int workers = Math.Max(1, Math.Min(get_num_threads(), Environment.ProcessorCount));
        KernelParallel.For(workers, (long)v * d * b / workers, (first, last) =>
        {
            for (int worker = first; worker < last; worker++)
            {
                int block;
                while ((block = Interlocked.Increment(ref next) - 1) < blocks)
                {
                    int start = block * blockRows, end = Math.Min(v, start + blockRows);
                    for (int i = 0; i < b; i++)
                    {
                        if (w8p != 0)
                            DotRowsInt8((float*)xp + ((long)i * d), (sbyte*)w8p, (float*)sp, d, start, end, (float*)yp + ((long)i * v), VectorBits);
                        else if (w16p != 0)
                            DotRowsBf16((float*)xp + ((long)i * d), (ushort*)w16p, d, start, end, (float*)yp + ((long)i * v));
                        else
                            DotRows((float*)xp + ((long)i * d), (float*)wp, d, start, end, (float*)yp + ((long)i * v));
                    }
                }
            }
        });
    }

    /// <summary>y[r] = ⟨x, w[r]⟩ for vocabulary rows start … end−1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DotRows(float* x, float* w, int d, int start, int end, float* y)
    {
        int r = start;
        if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported && d % 16 == 0)
        {
            for (; r + 4 <= end; r += 4)
            {
                float* w0 = w + ((long)r * d), w1 = w0 + d, w2 = w1 + d, w3 = w2 + d;
                Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
                for (int c = 0; c < d; c += 16)
                {
                    Sse.Prefetch0(w0 + c + (PrefetchRows * d));                 // a hint: past the end is harmless
                    var xv = Vector512.Load(x + c);
                    a0 = Avx512F.FusedMultiplyAdd(Vector512.Load(w0 + c), xv, a0);
                    a1 = Avx512F.FusedMultiplyAdd(Vector512.Load(w1 + c), xv, a1);
                    a2 = Avx512F.FusedMultiplyAdd(Vector512.Load(w2 + c), xv, a2);
                    a3 = Avx512F.FusedMultiplyAdd(Vector512.Load(w3 + c), xv, a3);
                }
                y[r] = Vector512.Sum(a0);
                y[r + 1] = Vector512.Sum(a1);
                y[r + 2] = Vector512.Sum(a2);
                y[r + 3] = Vector512.Sum(a3);
            }
        }
        for (; r < end; r++)
            y[r] = RowKernels.Dot(x, w + ((long)r * d), d);
    }

    /// <summary>y[r] = ⟨x, w[r]⟩ for vocabulary rows start … end−1, w in bf16 (each value widened: its bits shifted up 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DotRowsBf16(float* x, ushort* w, int d, int start, int end, float* y)
    {
        int r = start;
        if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported && d % 32 == 0 && d <= MaxPairedWidth)
        {
            // 32 bf16 values per 512-bit load, as 16 pairs: the even element of a pair is its low half shifted up,
            // the odd one its high half masked, so two cheap ops widen 32 values; x is split into its even and odd
            // elements once to match.
            int half = d / 2;
            float* xe = stackalloc float[half], xo = stackalloc float[half];
            for (int i = 0; i < half; i++)
                (xe[i], xo[i]) = (x[2 * i], x[(2 * i) + 1]);
            var high = Vector512.Create(0xFFFF0000u);
            for (; r + 4 <= end; r += 4)
            {
                ushort* w0 = w + ((long)r * d), w1 = w0 + d, w2 = w1 + d, w3 = w2 + d;
                Vector512<float> e0 = Vector512<float>.Zero, e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
                for (int c = 0; c < d; c += 32)
                {
                    Sse.Prefetch0(w0 + c + (2 * PrefetchRows * d));             // as many bytes ahead as the fp32 kernel
                    Vector512<float> xev = Vector512.Load(xe + (c / 2)), xov = Vector512.Load(xo + (c / 2));
                    Vector512<uint> p0 = Vector512.Load((uint*)(w0 + c)), p1 = Vector512.Load((uint*)(w1 + c)),
                        p2 = Vector512.Load((uint*)(w2 + c)), p3 = Vector512.Load((uint*)(w3 + c));
                    e0 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p0, 16).AsSingle(), xev, e0);
                    o0 = Avx512F.FusedMultiplyAdd((p0 & high).AsSingle(), xov, o0);
                    e1 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p1, 16).AsSingle(), xev, e1);
                    o1 = Avx512F.FusedMultiplyAdd((p1 & high).AsSingle(), xov, o1);
                    e2 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p2, 16).AsSingle(), xev, e2);
                    o2 = Avx512F.FusedMultiplyAdd((p2 & high).AsSingle(), xov, o2);
                    e3 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p3, 16).AsSingle(), xev, e3);
                    o3 = Avx512F.FusedMultiplyAdd((p3 & high).AsSingle(), xov, o3);
                }
                y[r] = Vector512.Sum(e0 + o0);
                y[r + 1] = Vector512.Sum(e1 + o1);
                y[r + 2] = Vector512.Sum(e2 + o2);
                y[r + 3] = Vector512.Sum(e3 + o3);
            }
        }
        else if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported && d % 16 == 0)
        {
            for (; r + 4 <= end; r += 4)
            {
                ushort* w0 = w + ((long)r * d), w1 = w0 + d, w2 = w1 + d, w3 = w2 + d;
                Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
                for (int c = 0; c < d; c += 16)
                {
                    Sse.Prefetch0(w0 + c + (2 * PrefetchRows * d));             // as many bytes ahead as the fp32 kernel
                    var xv = Vector512.Load(x + c);
                    a0 = Avx512F.FusedMultiplyAdd(Widen(w0 + c), xv, a0);
                    a1 = Avx512F.FusedMultiplyAdd(Widen(w1 + c), xv, a1);
                    a2 = Avx512F.FusedMultiplyAdd(Widen(w2 + c), xv, a2);
                    a3 = Avx512F.FusedMultiplyAdd(Widen(w3 + c), xv, a3);
                }
                y[r] = Vector512.Sum(a0);
                y[r + 1] = Vector512.Sum(a1);
                y[r + 2] = Vector512.Sum(a2);
                y[r + 3] = Vector512.Sum(a3);
            }
        }
        for (; r < end; r++)
        {
            float sum = 0f;
            ushort* row = w + ((long)r * d);
            for (int c = 0; c < d; c++)
                sum += x[c] * BitConverter.UInt32BitsToSingle((uint)row[c] << 16);
            y[r] = sum;
        }
    }

    /// <summary>The widest vector path of the int8 kernel on this machine: 512 (AVX-512), 256 (AVX2 + FMA) or 0 (scalar).</summary>
    internal static int VectorBits { get; } =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? 512 : Avx2.IsSupported && Fma.IsSupported ? 256 : 0;

    /// <summary>
    /// y[r] = s[r] · ⟨x, q[r]⟩ for vocabulary rows start … end−1, q in int8 (sign-extended to int32 and converted to fp32
    /// in registers); <paramref name="vectorBits"/> picks the path (512, 256 or 0 for scalar; tests run each one that
    /// the machine supports). Four rows at a time share each load of x.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void DotRowsInt8(float* x, sbyte* q, float* scales, int d, int start, int end, float* y, int vectorBits)
    {
        int r = start;
        if (vectorBits >= 512 && Avx512F.IsSupported && d % 16 == 0)
        {
            for (; r + 4 <= end; r += 4)
            {
                sbyte* q0 = q + ((long)r * d), q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
                Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
                for (int c = 0; c < d; c += 16)
                {
                    Sse.Prefetch0(q0 + c + (4 * PrefetchRows * d));             // as many bytes ahead as the fp32 kernel
                    var xv = Vector512.Load(x + c);
                    a0 = Avx512F.FusedMultiplyAdd(Widen(q0 + c), xv, a0);
                    a1 = Avx512F.FusedMultiplyAdd(Widen(q1 + c), xv, a1);
                    a2 = Avx512F.FusedMultiplyAdd(Widen(q2 + c), xv, a2);
                    a3 = Avx512F.FusedMultiplyAdd(Widen(q3 + c), xv, a3);
                }
                y[r] = scales[r] * Vector512.Sum(a0);
                y[r + 1] = scales[r + 1] * Vector512.Sum(a1);
                y[r + 2] = scales[r + 2] * Vector512.Sum(a2);
                y[r + 3] = scales[r + 3] * Vector512.Sum(a3);
            }
        }
        else if (vectorBits >= 256 && Avx2.IsSupported && Fma.IsSupported && d % 8 == 0)
        {
            for (; r + 4 <= end; r += 4)
            {
                sbyte* q0 = q + ((long)r * d), q1 = q0 + d, q2 = q1 + d, q3 = q2 + d;
                Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
                for (int c = 0; c < d; c += 8)
                {
                    Sse.Prefetch0(q0 + c + (4 * PrefetchRows * d));
                    var xv = Vector256.Load(x + c);
                    a0 = Fma.MultiplyAdd(Widen256(q0 + c), xv, a0);
                    a1 = Fma.MultiplyAdd(Widen256(q1 + c), xv, a1);
                    a2 = Fma.MultiplyAdd(Widen256(q2 + c), xv, a2);
                    a3 = Fma.MultiplyAdd(Widen256(q3 + c), xv, a3);
                }
                y[r] = scales[r] * Vector256.Sum(a0);
                y[r + 1] = scales[r + 1] * Vector256.Sum(a1);
                y[r + 2] = scales[r + 2] * Vector256.Sum(a2);
                y[r + 3] = scales[r + 3] * Vector256.Sum(a3);
            }
        }
        for (; r < end; r++)
        {
            float sum = 0f;
            sbyte* row = q + ((long)r * d);
            for (int c = 0; c < d; c++)
                sum += x[c] * row[c];
            y[r] = scales[r] * sum;
        }
    }

    /// <summary>16 int8 → 16 fp32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe Vector512<float> Widen(sbyte* p) => Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(p)));

    /// <summary>8 int8 → 8 fp32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe Vector256<float> Widen256(sbyte* p) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> Widen(ushort* p) =>
        Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load(p)), 16).AsSingle();
}
