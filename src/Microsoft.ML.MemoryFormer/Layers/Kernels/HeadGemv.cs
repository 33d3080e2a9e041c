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
/// does not hold up the rest. Within a block, the fp32 AVX-512 path takes four vocabulary rows at a time (four
/// accumulators, one load of x per four rows) and prefetches eight rows ahead; the bf16 and int8 paths, which spend more
/// instructions per byte, take one row at a time (one contiguous stream: faster per core, measured). <c>perf decode-profile</c>
/// compares it with libtorch's <c>linear</c>/<c>mv</c>.
/// </remarks>
internal static class HeadGemv
{
    /// <summary>Most rows per call; above it the GEMM reuses each weight row well enough.</summary>
    public const int MaxRows = 4;

    private const long BlockBytes = 1 << 20;
    private const int PrefetchRows = 8;

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

    /// <summary>True when <see cref="Linear(Tensor, Tensor, Tensor?)"/> serves x [B, d] · weightᵀ: inference (no gradients) over
    /// CPU fp32 tensors, any B.</summary>
    public static bool ServesRows(Tensor x, Tensor weight) =>
        TorchRuntime.UseFusedKernels && !is_grad_enabled() && x.dim() == 2
        && TensorMemory.IsCpuFloat32(x) && TensorMemory.IsCpuFloat32(weight) && weight.is_contiguous();

    /// <summary>
    /// A task head's linear layer at inference, x [B, d] → x · weightᵀ + bias [B, V], each row computed from its own
    /// vector alone in a fixed order (<see cref="Linear(float*, int, float*, float*, int, int, float*)"/>). libtorch's GEMM
    /// rounds by batch shape, so a row scored alone (a PredictionEngine) could get other bits than in a batch.
    /// </summary>
    public static unsafe Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        var xc = x.contiguous();
        int b = (int)xc.shape[0], d = (int)xc.shape[1], v = (int)weight.shape[0];
        var y = empty(b, v, ScalarType.Float32);
        Linear(TensorMemory.Floats(xc), b, TensorMemory.Floats(weight), bias is null ? null : TensorMemory.Floats(bias), v, d, TensorMemory.Floats(y));
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>y [B, V] = x [B, d] · w [V, d]ᵀ + bias [V] (bias may be null): each y[i, r] is ⟨x[i], w[r]⟩ in a fixed order,
    /// then the bias added, whatever B is. A weight of at most one block (a task head) stays in each core's cache while the
    /// workers share the rows; a larger one is shared by vocabulary blocks (<see cref="Compute(float*, int, float*, int, int, float*)"/>,
    /// the same bits: <see cref="DotRows"/> groups a row's outputs by four from row 0 either way).</summary>
    public static unsafe void Linear(float* x, int b, float* w, float* bias, int v, int d, float* y)
    {
        nint xp = (nint)x, wp = (nint)w, bp = (nint)bias, yp = (nint)y;
        bool oneBlock = 4L * v * d <= BlockBytes;
        if (!oneBlock)
            Compute(x, b, w, v, d, y);
        KernelParallel.For(b, (long)v * d, (first, end) =>
        {
            for (int i = first; i < end; i++)
            {
                float* yi = (float*)yp + ((long)i * v);
                if (oneBlock)
                    DotRows((float*)xp + ((long)i * d), (float*)wp, d, 0, v, yi);
                for (int r = 0; bp != 0 && r < v; r++)
                    yi[r] += ((float*)bp)[r];
            }
        });
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
        float* split = null;
        if (w16 != null && PairedBf16(d, VectorBits))
        {
            // x's even and odd elements, split once per call for every block and worker (not once per block)
            if (splitBuffer is null || splitBuffer.Length < b * d)
                splitBuffer = GC.AllocateArray<float>(Math.Max(b * d, 1024), pinned: true);
            split = (float*)Unsafe.AsPointer(ref splitBuffer[0]);
            for (int i = 0; i < b; i++)
                SplitEvenOdd(x + ((long)i * d), d, split + ((long)i * d));
        }
        nint xp = (nint)x, wp = (nint)w, w16p = (nint)w16, w8p = (nint)w8, sp = (nint)scales, yp = (nint)y, splitp = (nint)split;
        int blockRows = (int)Math.Max(4, BlockBytes / (4L * d) / 4 * 4);
        int blocks = (v + blockRows - 1) / blockRows, next = 0;
        int workers = KernelParallel.Workers;
        void Work()
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
                        DotRowsBf16((float*)xp + ((long)i * d), splitp == 0 ? null : (float*)splitp + ((long)i * d), (ushort*)w16p, d, start, end,
                            (float*)yp + ((long)i * v), VectorBits);
                    else
                        DotRows((float*)xp + ((long)i * d), (float*)wp, d, start, end, (float*)yp + ((long)i * v));
                }
            }
        }
        if (workers == 2)
        {
            PairFork.Run((long)v * d * b / 2, _ => Work());                     // Parallel.For unless PairFork.Enabled (opt-in helper thread)
            return;
        }
        KernelParallel.For(workers, (long)v * d * b / workers, (first, last) =>
        {
            for (int worker = first; worker < last; worker++)
                Work();
        });
    }

    /// <summary>The calling thread's buffer for x split into even and odd elements (the workers only read it during the call).</summary>
    [ThreadStatic]
    private static float[]? splitBuffer;

    /// <summary>True when the bf16 kernel takes its paired AVX-512 path (each 32-bit lane a pair of bf16 values) for width d.</summary>
    internal static bool PairedBf16(int d, int vectorBits) => vectorBits >= 512 && Avx512F.IsSupported && d % 32 == 0;

    /// <summary>
    /// split [d] = x's even elements [d/2] then its odd ones [d/2], the layout <see cref="DotRowsBf16"/>'s paired path reads
    /// against a row's pairs (even element = low half of a 32-bit lane).
    /// </summary>
    internal static unsafe void SplitEvenOdd(float* x, int d, float* split)
    {
        int half = d / 2;
        for (int i = 0; i < half; i++)
            (split[i], split[half + i]) = (x[2 * i], x[(2 * i) + 1]);
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

    /// <summary>
    /// y[r] = ⟨x, w[r]⟩ for vocabulary rows start … end−1, w in bf16 (each value widened: its bits shifted up 16);
    /// <paramref name="split"/> is x as <see cref="SplitEvenOdd"/> lays it out, needed when <see cref="PairedBf16"/> holds
    /// (else ignored, may be null); <paramref name="vectorBits"/> picks the path (512 or 0 for scalar; tests run both).
    /// </summary>
    /// <remarks>
    /// The paired path reads 32 bf16 values per 512-bit load, as 16 pairs: the even element of a pair is its low half
    /// shifted up, the odd one its high half masked, multiplied by x's even and odd elements (two cheap ops widen 32
    /// values). It takes one row at a time, a single contiguous stream that the hardware prefetcher follows; four rows
    /// at a time (four streams 2·d bytes apart, one load of x per four rows) measured ≈ 1.3–1.45× slower per core at d = 1024,
    /// and software prefetching did not help either (<c>docs/benchmarks.md</c>, decode).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void DotRowsBf16(float* x, float* split, ushort* w, int d, int start, int end, float* y, int vectorBits)
    {
        int r = start;
        if (PairedBf16(d, vectorBits) && split != null)
        {
            int half = d / 2;
            float* xe = split, xo = split + half;
            var high = Vector512.Create(0xFFFF0000u);
            for (; r < end; r++)
            {
                ushort* row = w + ((long)r * d);
                Vector512<float> e0 = Vector512<float>.Zero, e1 = e0, o0 = e0, o1 = e0;
                int c = 0;
                for (; c + 64 <= d; c += 64)
                {
                    Vector512<uint> p0 = Vector512.Load((uint*)(row + c)), p1 = Vector512.Load((uint*)(row + c + 32));
                    e0 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p0, 16).AsSingle(), Vector512.Load(xe + (c / 2)), e0);
                    o0 = Avx512F.FusedMultiplyAdd((p0 & high).AsSingle(), Vector512.Load(xo + (c / 2)), o0);
                    e1 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p1, 16).AsSingle(), Vector512.Load(xe + (c / 2) + 16), e1);
                    o1 = Avx512F.FusedMultiplyAdd((p1 & high).AsSingle(), Vector512.Load(xo + (c / 2) + 16), o1);
                }
                if (c < d)                                                      // d = 32 (mod 64): one more pair vector
                {
                    Vector512<uint> p0 = Vector512.Load((uint*)(row + c));
                    e0 = Avx512F.FusedMultiplyAdd(Avx512F.ShiftLeftLogical(p0, 16).AsSingle(), Vector512.Load(xe + (c / 2)), e0);
                    o0 = Avx512F.FusedMultiplyAdd((p0 & high).AsSingle(), Vector512.Load(xo + (c / 2)), o0);
                }
                y[r] = Vector512.Sum((e0 + o0) + (e1 + o1));
            }
        }
        else if (vectorBits >= 512 && Avx512F.IsSupported && d % 16 == 0)
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
    /// the machine supports). AVX-512 takes one row at a time, AVX2 four rows at a time (sharing each load of x).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void DotRowsInt8(float* x, sbyte* q, float* scales, int d, int start, int end, float* y, int vectorBits)
    {
        int r = start;
        if (vectorBits >= 512 && Avx512F.IsSupported && d % 16 == 0)
        {
            // One row at a time, one contiguous stream (as the bf16 kernel; ≈ 1.17× faster per core than four rows at a time
            // at d = 1024), prefetching eight rows ahead.
            for (; r < end; r++)
            {
                sbyte* row = q + ((long)r * d);
                Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
                int c = 0;
                for (; c + 64 <= d; c += 64)
                {
                    Sse.Prefetch0(row + c + (PrefetchRows * d));                // a hint: past the end is harmless
                    a0 = Avx512F.FusedMultiplyAdd(Widen(row + c), Vector512.Load(x + c), a0);
                    a1 = Avx512F.FusedMultiplyAdd(Widen(row + c + 16), Vector512.Load(x + c + 16), a1);
                    a2 = Avx512F.FusedMultiplyAdd(Widen(row + c + 32), Vector512.Load(x + c + 32), a2);
                    a3 = Avx512F.FusedMultiplyAdd(Widen(row + c + 48), Vector512.Load(x + c + 48), a3);
                }
                for (; c < d; c += 16)
                    a0 = Avx512F.FusedMultiplyAdd(Widen(row + c), Vector512.Load(x + c), a0);
                y[r] = scales[r] * Vector512.Sum((a0 + a1) + (a2 + a3));
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
