using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// What this machine gives, on <see cref="KernelParallel.Workers"/> threads, for the access patterns of the Memory Layer's kernels at
/// d = 512, N = 4096 (<c>perf layer-budget</c>): random 64-byte lines from a 1 MB region per thread (the tiled forward's walk over its
/// L2 tile), random 2 KB rows from an 8 MB buffer both threads share (the row pass's ∂L/∂y in L3) or from 256 MB (DRAM), and streams
/// (the tile-major copy, the gradient's non-temporal write). Each body does as many loads as the kernel it stands for.
/// </summary>
internal static unsafe class AccessRates
{
    private const int Hits = 262_144;                    // N·K at N = 4096, K = 64

    /// <summary>(pattern, ms, MB moved, ns a line or row per thread), medians of <paramref name="rounds"/> interleaved rounds.</summary>
    public static List<(string Name, double Ms, double Mb, double UnitNs)> Measure(int rounds)
    {
        int workers = KernelParallel.Workers;
        var random = new Random(7);
        const long l2Floats = (1 << 20) / 4, l3Floats = 4096L * 512, dramFloats = 64L << 20, streamFloats = 8L << 20;
        var l2 = Enumerable.Range(0, workers).Select(_ => Alloc(l2Floats)).ToArray();
        nint l3 = Alloc(l3Floats), dram = Alloc(dramFloats), src = Alloc(streamFloats), dst = Alloc(streamFloats);
        var lineIndex = Enumerable.Range(0, Hits).Select(_ => random.Next((int)(l2Floats / 16))).ToArray();
        var tokenIndex = Enumerable.Range(0, Hits).Select(_ => random.Next(4096)).ToArray();
        var farIndex = Enumerable.Range(0, Hits).Select(_ => random.Next((int)(dramFloats / 512))).ToArray();
        var sink = new float[workers * 16];
        try
        {
            // The walk: 32 tiles × N·K hits over both threads, 8 independent chains as in TiledGather.Tokens8.
            int l2Passes = 32 / workers;
            var bodies = new (string Name, Action Body, double Mb, double Units)[]
            {
                ("L2: random 64-byte lines, own 1 MB region (the tiled walk)", () => Run(workers, t => RandomLines(l2[t], lineIndex, l2Passes, sink, t)),
                    32.0 * Hits * 64 / 1e6, (double)l2Passes * Hits),
                ("L2: the same 1 MB region read in order", () => Run(workers, t => Sequential(l2[t], l2Floats, l2Passes * Hits * 16L / l2Floats, sink, t)),
                    32.0 * Hits * 64 / 1e6, (double)l2Passes * Hits),
                ("L3: random 2 KB rows of a shared 8 MB buffer (the row pass's ∂L/∂y)", () => Run(workers, t => RandomRows(l3, tokenIndex, t, workers, sink)),
                    Hits * 2048.0 / 1e6, (double)Hits / workers),
                ("DRAM: random 2 KB rows of a 256 MB buffer", () => Run(workers, t => RandomRows(dram, farIndex, t, workers, sink)),
                    Hits * 2048.0 / 1e6, (double)Hits / workers),
                ("stream: read 32 MB in order", () => Run(workers, t => Sequential(src + (nint)(t * streamFloats / workers * 4), streamFloats / workers, 1, sink, t)),
                    streamFloats * 4 / 1e6, streamFloats / 16.0 / workers),
                ("stream: copy 32 MB, non-temporal stores (the tile-major copy)", () => Run(workers, t => Copy(src, dst, streamFloats, t, workers)),
                    streamFloats * 8 / 1e6, streamFloats / 16.0 / workers),
                ("stream: write 32 MB, non-temporal stores (the table gradient)", () => Run(workers, t => Write(dst, streamFloats, t, workers)),
                    streamFloats * 4 / 1e6, streamFloats / 16.0 / workers),
            };
            var looped = bodies.Select(b => Timing.Looped(b.Body, 1, 20)).ToArray();
            var medians = Timing.Interleave(looped.Select(l => l.Body).ToArray(), rounds);
            return bodies.Select((b, i) =>
            {
                double ms = medians[i] / looped[i].Loops;
                return (b.Name, ms, b.Mb, ms * 1e6 / b.Units);
            }).ToList();
        }
        finally
        {
            foreach (var p in l2.Append(l3).Append(dram).Append(src).Append(dst))
                NativeMemory.AlignedFree((void*)p);
        }
    }

    private static nint Alloc(long floats)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)(floats * 4), 64);
        new Span<float>(p, (int)Math.Min(floats, int.MaxValue)).Fill(1f);
        for (long i = int.MaxValue; i < floats; i++)
            p[i] = 1f;
        return (nint)p;
    }

    private static void Run(int workers, Action<int> body) =>
        KernelParallel.For(workers, 1L << 30, (start, end) => { for (int t = start; t < end; t++) body(t); });

    private static void RandomLines(nint region, int[] index, int passes, float[] sink, int t)
    {
        float* b = (float*)region;
        var w = Vector512.Create(0.5f);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        fixed (int* ix = index)
            for (int p = 0; p < passes; p++)
                for (int j = 0; j + 8 <= index.Length; j += 8)
                {
                    int* r = ix + j;
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Load(b + ((nint)r[0] * 16)), w, a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.Load(b + ((nint)r[1] * 16)), w, a1);
                    a2 = Vector512.FusedMultiplyAdd(Vector512.Load(b + ((nint)r[2] * 16)), w, a2);
                    a3 = Vector512.FusedMultiplyAdd(Vector512.Load(b + ((nint)r[3] * 16)), w, a3);
                    a4 = Vector512.FusedMultiplyAdd(Vector512.Load(b + ((nint)r[4] * 16)), w, a4);
                    a5 = Vector512.FusedMultiplyAdd(Vector512.Load(b + ((nint)r[5] * 16)), w, a5);
                    a6 = Vector512.FusedMultiplyAdd(Vector512.Load(b + ((nint)r[6] * 16)), w, a6);
                    a7 = Vector512.FusedMultiplyAdd(Vector512.Load(b + ((nint)r[7] * 16)), w, a7);
                }
        sink[t * 16] = Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7);
    }

    private static void Sequential(nint region, long floats, long passes, float[] sink, int t)
    {
        float* b = (float*)region;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (long p = 0; p < passes; p++)
            for (long i = 0; i + 64 <= floats; i += 64)
            {
                a0 += Vector512.Load(b + i);
                a1 += Vector512.Load(b + i + 16);
                a2 += Vector512.Load(b + i + 32);
                a3 += Vector512.Load(b + i + 48);
            }
        sink[t * 16] = Vector512.Sum(a0 + a1 + a2 + a3);
    }

    /// <summary>Thread t's share of the hits, each a whole 512-float row summed into eight registers (the row pass's loads).</summary>
    private static void RandomRows(nint buffer, int[] index, int t, int workers, float[] sink)
    {
        float* b = (float*)buffer;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        int lo = index.Length * t / workers, hi = index.Length * (t + 1) / workers;
        for (int j = lo; j < hi; j++)
        {
            float* g = b + ((long)index[j] * 512);
            for (int c = 0; c < 512; c += 128)
            {
                a0 += Vector512.Load(g + c);
                a1 += Vector512.Load(g + c + 16);
                a2 += Vector512.Load(g + c + 32);
                a3 += Vector512.Load(g + c + 48);
                a4 += Vector512.Load(g + c + 64);
                a5 += Vector512.Load(g + c + 80);
                a6 += Vector512.Load(g + c + 96);
                a7 += Vector512.Load(g + c + 112);
            }
        }
        sink[t * 16] = Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7);
    }

    private static void Copy(nint src, nint dst, long floats, int t, int workers)
    {
        long lo = floats * t / workers / 16 * 16, hi = floats * (t + 1) / workers / 16 * 16;
        for (long i = lo; i < hi; i += 16)
            Vector512.Load((float*)src + i).StoreAlignedNonTemporal((float*)dst + i);
        RowGradientKernel.Fence();
    }

    private static void Write(nint dst, long floats, int t, int workers)
    {
        long lo = floats * t / workers / 16 * 16, hi = floats * (t + 1) / workers / 16 * 16;
        for (long i = lo; i < hi; i += 16)
            Vector512<float>.Zero.StoreAlignedNonTemporal((float*)dst + i);
        RowGradientKernel.Fence();
    }
}
