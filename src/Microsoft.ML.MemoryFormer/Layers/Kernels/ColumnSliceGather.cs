using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The Memory Layer's weighted gather for a whole batch of tokens at once, table-major by column slice, for the fused
/// inference encoder (<see cref="FusedEncoderBlock"/>): <c>out[n, :] = bias + Σ_k w[n, k] · table[row[n, k], :]</c>
/// (optionally added to what <c>out</c> holds: the residual), one 32-column slice of the table at a time.
/// </summary>
/// <remarks>
/// <para>Why: token by token, every token reads K whole rows scattered over a table of 2–8 MB, larger than a core's L2,
/// so each row is a string of cache misses (about a third of the encoder's time each for the Q/K/V and the Memory Block
/// gathers on long rows). Here one work item takes one 32-column slice of one table (128 bytes of each row) and walks
/// every token of the batch: the slice of a group of chunks (at most <see cref="SliceBytes"/>, 4,096 rows) stays in L2
/// while thousands of tokens read it, so each table byte comes from L3 or memory about once per batch instead of once
/// per hit. Tables whose slice is larger (the Memory Block's second layer, τ+2 bits) are walked in chunk groups, the
/// partial sums kept in a scratch row.</para>
/// <para>Work items are (table, slice, token range) and each writes only its own output columns and tokens: no atomics,
/// and every output value is the same FMA chain (bias, then chunks in order) as <see cref="RowKernels.WeightedBagSum"/>,
/// so the result is bit-identical to the token-major gather and does not depend on the thread count.</para>
/// </remarks>
internal static unsafe class ColumnSliceGather
{
    /// <summary>Columns per slice: 128 bytes, two cache lines of a row.</summary>
    public const int Slice = 32;

    /// <summary>The most bytes of one table slice a work item keeps hot: half a core's L2, read at run time
    /// (<see cref="Runtime.CacheSizes"/>: 512 KB on the Zen 4 as before, 1 MB on the Intel machine's 2 MB L2). Any size gives the
    /// same bits (a chunk group's partial sums continue the same FMA chains); settable for <c>perf scoring</c> to time it.</summary>
    internal static long SliceBytes { get; set; } = Runtime.CacheSizes.L2Bytes / 2;

    /// <summary>One table read with the shared rows and weights.</summary>
    /// <param name="Table">[R, Width] fp32 rows.</param>
    /// <param name="Bias">[Width], the start of every sum.</param>
    /// <param name="Output">[N, Width]: receives the sums (or has them added, <paramref name="AddToOutput"/>).</param>
    /// <param name="Partial">[N, Width] scratch for the partial sums between chunk groups; may be <paramref name="Output"/>
    /// unless <paramref name="AddToOutput"/> is set.</param>
    /// <param name="Width">Columns, a multiple of <see cref="Slice"/>.</param>
    /// <param name="AddToOutput">Output = Output + sum (the residual) instead of Output = sum.</param>
    public readonly record struct Target(nint Table, nint Bias, nint Output, nint Partial, int Width, bool AddToOutput);

    /// <summary>True when a table of this width takes the kernel (else the token-major <see cref="RowKernels.WeightedBagSum"/>).</summary>
    public static bool Supports(int width) => width > 0 && width % Slice == 0 && Vector256.IsHardwareAccelerated;

    /// <summary>Runs every target over tokens [0, n) with rows int [n, k] (global table rows) and weights [n, k].</summary>
    /// <param name="targets">The tables, each with its own output.</param>
    /// <param name="rows">Global row indices [n, k].</param>
    /// <param name="weights">Per-chunk weights [n, k].</param>
    /// <param name="n">Tokens.</param>
    /// <param name="k">Chunks per token.</param>
    /// <param name="rowsPerChunk">Rows of one chunk's block (2^bits): sizes the chunk groups.</param>
    public static void Run(Target[] targets, int* rows, float* weights, int n, int k, int rowsPerChunk)
    {
        foreach (var target in targets)
            if (!Supports(target.Width) || target.Bias == 0 || (target.AddToOutput && target.Partial == target.Output))
                throw new ArgumentException($"A column-slice gather target needs a width that is a multiple of {Slice} (got {target.Width}), a bias and, when added to its output, a separate partial buffer.", nameof(targets));
        if (n <= 0)
            return;
        int groupChunks = (int)Math.Clamp(SliceBytes / ((long)rowsPerChunk * Slice * sizeof(float)), 1, k);
        var slices = new int[targets.Length + 1];                               // prefix sums of each target's slice count
        for (int t = 0; t < targets.Length; t++)
            slices[t + 1] = slices[t] + (targets[t].Width / Slice);
        int workers = Math.Max(1, Math.Min(TorchSharp.torch.get_num_threads(), Environment.ProcessorCount));
        // Enough items to balance the workers (each token range reloads its slice, so no more than needed).
        int parts = Math.Clamp((2 * workers + slices[^1] - 1) / slices[^1], 1, Math.Max(1, n / 64));
        nint rowsAddress = (nint)rows, weightsAddress = (nint)weights;
        KernelParallel.For(slices[^1] * parts, (long)n / parts * k * Slice, (start, end) =>
        {
            for (int item = start; item < end; item++)
            {
                int slice = item / parts, part = item % parts, t = 0;
                while (slices[t + 1] <= slice) t++;
                int from = (int)((long)n * part / parts), to = (int)((long)n * (part + 1) / parts);
                Item(targets[t], (slice - slices[t]) * Slice, (int*)rowsAddress, (float*)weightsAddress, k, groupChunks, from, to);
            }
        });
    }

    /// <summary>One slice (columns [column, column + 32)) of one target over tokens [from, to), chunk group by chunk group.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Item(in Target target, int column, int* rows, float* weights, int k, int groupChunks, int from, int to)
    {
        float* table = (float*)target.Table + column, bias = (float*)target.Bias + column;
        float* output = (float*)target.Output + column, partial = (float*)target.Partial + column;
        int h = target.Width;
        for (int k0 = 0; k0 < k; k0 += groupChunks)
        {
            int k1 = Math.Min(k, k0 + groupChunks);
            bool first = k0 == 0, last = k1 == k;
            int t = from;
            if (Vector512.IsHardwareAccelerated)
            {
                for (; t + 4 <= to; t += 4)
                    Four512(table, h, rows, weights, k, k0, k1, t, first ? bias : null, partial, output, last, target.AddToOutput);
            }
            for (; t < to; t++)
                One256(table, h, rows, weights, k, k0, k1, t, first ? bias : null, partial, output, last, target.AddToOutput);
        }
    }

    /// <summary>Tokens t … t+3, chunks [k0, k1), with AVX-512: eight independent FMA chains.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Four512(float* table, int h, int* rows, float* weights, int k, int k0, int k1, int t,
        float* bias, float* partial, float* output, bool last, bool add)
    {
        long o0 = (long)t * h, o1 = o0 + h, o2 = o1 + h, o3 = o2 + h;
        Vector512<float> a0, b0, a1, b1, a2, b2, a3, b3;
        if (bias is not null)
        {
            a0 = a1 = a2 = a3 = Vector512.Load(bias);
            b0 = b1 = b2 = b3 = Vector512.Load(bias + 16);
        }
        else
        {
            (a0, b0) = (Vector512.Load(partial + o0), Vector512.Load(partial + o0 + 16));
            (a1, b1) = (Vector512.Load(partial + o1), Vector512.Load(partial + o1 + 16));
            (a2, b2) = (Vector512.Load(partial + o2), Vector512.Load(partial + o2 + 16));
            (a3, b3) = (Vector512.Load(partial + o3), Vector512.Load(partial + o3 + 16));
        }
        int* r0 = rows + ((long)t * k), r1 = r0 + k, r2 = r1 + k, r3 = r2 + k;
        float* w0 = weights + ((long)t * k), w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
        for (int c = k0; c < k1; c++)
        {
            float* s0 = table + ((long)r0[c] * h), s1 = table + ((long)r1[c] * h), s2 = table + ((long)r2[c] * h), s3 = table + ((long)r3[c] * h);
            var v0 = Vector512.Create(w0[c]);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(s0), v0, a0);
            b0 = Vector512.FusedMultiplyAdd(Vector512.Load(s0 + 16), v0, b0);
            var v1 = Vector512.Create(w1[c]);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(s1), v1, a1);
            b1 = Vector512.FusedMultiplyAdd(Vector512.Load(s1 + 16), v1, b1);
            var v2 = Vector512.Create(w2[c]);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Load(s2), v2, a2);
            b2 = Vector512.FusedMultiplyAdd(Vector512.Load(s2 + 16), v2, b2);
            var v3 = Vector512.Create(w3[c]);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Load(s3), v3, a3);
            b3 = Vector512.FusedMultiplyAdd(Vector512.Load(s3 + 16), v3, b3);
        }
        float* d = last ? output : partial;
        if (last && add)
        {
            a0 = Vector512.Load(d + o0) + a0; b0 = Vector512.Load(d + o0 + 16) + b0;
            a1 = Vector512.Load(d + o1) + a1; b1 = Vector512.Load(d + o1 + 16) + b1;
            a2 = Vector512.Load(d + o2) + a2; b2 = Vector512.Load(d + o2 + 16) + b2;
            a3 = Vector512.Load(d + o3) + a3; b3 = Vector512.Load(d + o3 + 16) + b3;
        }
        a0.Store(d + o0); b0.Store(d + o0 + 16);
        a1.Store(d + o1); b1.Store(d + o1 + 16);
        a2.Store(d + o2); b2.Store(d + o2 + 16);
        a3.Store(d + o3); b3.Store(d + o3 + 16);
    }

    /// <summary>Token t, chunks [k0, k1), with 256-bit vectors (the tail of the AVX-512 loop, and machines without it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void One256(float* table, int h, int* rows, float* weights, int k, int k0, int k1, int t,
        float* bias, float* partial, float* output, bool last, bool add)
    {
        long o = (long)t * h;
        float* start = bias is not null ? bias : partial + o;
        Vector256<float> a0 = Vector256.Load(start), a1 = Vector256.Load(start + 8), a2 = Vector256.Load(start + 16), a3 = Vector256.Load(start + 24);
        int* r = rows + ((long)t * k);
        float* w = weights + ((long)t * k);
        for (int c = k0; c < k1; c++)
        {
            float* s = table + ((long)r[c] * h);
            var v = Vector256.Create(w[c]);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(s), v, a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 8), v, a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 16), v, a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Load(s + 24), v, a3);
        }
        float* d = (last ? output : partial) + o;
        if (last && add)
        {
            a0 = Vector256.Load(d) + a0; a1 = Vector256.Load(d + 8) + a1;
            a2 = Vector256.Load(d + 16) + a2; a3 = Vector256.Load(d + 24) + a3;
        }
        a0.Store(d); a1.Store(d + 8); a2.Store(d + 16); a3.Store(d + 24);
    }
}
