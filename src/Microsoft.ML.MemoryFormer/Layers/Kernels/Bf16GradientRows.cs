using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// A bf16 copy of the upstream gradient ∂L/∂y [N, h] for the backward's row pass (<see cref="TableGradientPass"/>,
/// <see cref="KernelSettings.Bf16GradientRows"/>): the pass reads one ∂L/∂y row per hit, random rows of [N, h] that
/// come from L2/L3, and 40–60 % of its time waits on them (docs/benchmarks.md, "Memory Layer, fourth round"); a bf16
/// row is half the bytes. Each value is rounded to the nearest bf16, ties to even (<see cref="Bf16Matrix.Round"/>: 8
/// significant bits, fp32's range, NaN stays NaN); the kernel widens it back exactly and accumulates in fp32.
/// </summary>
/// <remarks>
/// Layout, "paired": row n holds h/2 32-bit lanes; in each 32-column block b, lane 16·b + i holds column 32·b + i in its
/// low half and column 32·b + 16 + i in its high half. So one 512-bit load widens to two fp32 vectors of 16 adjacent
/// columns with one shift and one mask (<see cref="Low"/>, <see cref="High"/>), and the narrow needs no pack instruction.
/// Needs h a multiple of 32 (<see cref="Supports"/>).
/// </remarks>
internal static unsafe class Bf16GradientRows
{
    /// <summary>Whether a table of width <paramref name="h"/> can take the bf16 row pass on this machine (AVX-512, h % 32 = 0).</summary>
    public static bool Supports(int h) => Vector512.IsHardwareAccelerated && h > 0 && h % 32 == 0;

    /// <summary>
    /// The paired copy of src [N, h] on memory a backward reuses: a <see cref="KernelBuffers"/> block while a training runs
    /// (the blocks it keeps mapped), otherwise a pooled, pinned array (<see cref="ArrayPool{T}.Shared"/>). Outside a training
    /// <see cref="KernelBuffers"/> hands out a fresh torch tensor, and its page faults cost a layer's backward at N = 2048
    /// what the copy saved (<c>perf layer</c>); inside one, steps with pooled arrays showed more page faults than with the
    /// blocks (<c>perf train</c>, loaded). Dispose it after the pass.
    /// </summary>
    public static Copy Make(float* src, int n, int h)
    {
        var copy = KernelBuffers.Reusing ? new Copy(KernelBuffers.Empty(n, h / 2)) : new Copy(ArrayPool<uint>.Shared.Rent(Math.Max(1, n * (h / 2))));
        Narrow(src, copy.Pointer, n, h);
        return copy;
    }

    /// <summary>The memory of one copy: a reused tensor block, or a pooled array pinned while the pass reads it.</summary>
    public sealed class Copy : IDisposable
    {
        private readonly uint[]? array;
        private readonly TorchSharp.torch.Tensor? tensor;
        private GCHandle handle;

        internal Copy(uint[] array) => (this.array, handle) = (array, GCHandle.Alloc(array, GCHandleType.Pinned));

        internal Copy(TorchSharp.torch.Tensor tensor) => this.tensor = tensor;

        /// <summary>The first lane.</summary>
        public uint* Pointer => tensor is not null ? (uint*)TensorMemory.Floats(tensor) : (uint*)handle.AddrOfPinnedObject();

        /// <summary>Returns the block or the array for reuse.</summary>
        public void Dispose()
        {
            tensor?.Dispose();
            if (!handle.IsAllocated)
                return;
            handle.Free();
            ArrayPool<uint>.Shared.Return(array!);
        }
    }

    /// <summary>dst [N, h/2] lanes = the paired bf16 copy of src [N, h], rows in parallel (<see cref="Supports"/> must hold).</summary>
    public static void Narrow(float* src, uint* dst, int n, int h)
    {
        nint s = (nint)src, d = (nint)dst;
        KernelParallel.For(n, h, (start, end) =>
        {
            for (int i = start; i < end; i++)
                NarrowRow((float*)s + ((long)i * h), (uint*)d + ((long)i * (h / 2)), h);
        });
    }

    /// <summary>One row: h floats → h/2 paired lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void NarrowRow(float* src, uint* dst, int h)
    {
        var high = Vector512.Create(0xFFFF0000u);
        for (int c = 0; c < h; c += 32)
        {
            var lo = Round(Vector512.Load(src + c));
            var hi = Round(Vector512.Load(src + c + 16));
            Vector512.ConditionalSelect(high, hi, lo >> 16).Store(dst + (c / 2));
        }
    }

    /// <summary>Columns 32·b … 32·b + 15 of a lane vector, exactly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Low(Vector512<uint> lanes) => (lanes << 16).AsSingle();

    /// <summary>Columns 32·b + 16 … 32·b + 31 of a lane vector, exactly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> High(Vector512<uint> lanes) => (lanes & Vector512.Create(0xFFFF0000u)).AsSingle();

    /// <summary>Column <paramref name="c"/> of row <paramref name="n"/> of a paired copy of width <paramref name="h"/>, as fp32 (tests, reference).</summary>
    public static float Get(uint* rows, int h, int n, int c)
    {
        uint lane = rows[((long)n * (h / 2)) + ((c / 32) * 16) + (c % 16)];
        return Bf16Matrix.ToFloat((ushort)(c % 32 < 16 ? lane & 0xFFFF : lane >> 16));
    }

    /// <summary>
    /// fp32 → bf16 in the upper 16 bits, round to nearest, ties to even: the bits plus 0x7FFF plus the lowest kept bit.
    /// A NaN keeps its upper bits with the quiet bit set, as <see cref="Bf16Matrix.Round"/> (the sum could carry it into infinity).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<uint> Round(Vector512<float> x)
    {
        var bits = x.AsUInt32();
        var rounded = bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One);
        var nan = ~Vector512.Equals(x, x).AsUInt32();
        return Vector512.ConditionalSelect(nan, bits | Vector512.Create(0x0040_0000u), rounded);
    }
}
