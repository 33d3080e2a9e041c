using System.Runtime.CompilerServices;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Models;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>The staged passes of <see cref="FusedEncoderBlock.Forward"/> when it is given scratch: each pass over every token
/// (hashes per token, then each table gathered slice by slice over all tokens by <see cref="ColumnSliceGather"/>, or token by
/// token), with the time of each stage added to a <see cref="ScoringProfile"/>.</summary>
internal sealed unsafe partial class FusedEncoderBlock
{
    /// <summary>Q, K, V of all tokens: the hashes first (per token), then each table slice by slice over every token, then rotary.</summary>
    private void TableMajorAttentionInputs(float* x, int[] positions, float* q, float* k, float* v, float* scratch, ScoringProfile? profile)
    {
        int n = positions.Length;
        float* weights = scratch + ((long)n * hidden);
        int* rows = (int*)(weights + ((long)n * chunks));
        nint xa = (nint)x, wa = (nint)weights, ra = (nint)rows;
        long clock = Stopwatch.GetTimestamp();
        KernelParallel.For(n, (long)width * 8, (start, end) =>
        {
            float* normed = stackalloc float[width];
            long* wide = stackalloc long[chunks];
            for (int t = start; t < end; t++)
            {
                RmsNorm((float*)xa + ((long)t * width), attentionGain, width, attentionEpsilon, normed);
                HashInto(normed, value, wide, (int*)ra + ((long)t * chunks), (float*)wa + ((long)t * chunks));
            }
        });
        if (profile is not null) profile.FusedHashMs += Lap(ref clock);
        Gather(
        [
            new((nint)query.Table, (nint)query.Bias, (nint)q, (nint)q, width, false),
            new((nint)key.Table, (nint)key.Bias, (nint)k, (nint)k, width, false),
            new((nint)value.Table, (nint)value.Bias, (nint)v, (nint)v, width, false),
        ], rows, weights, n, 1 << value.Bits);
        if (profile is not null) profile.FusedGatherMs += Lap(ref clock);
        nint qa = (nint)q, ka = (nint)k;
        KernelParallel.For(n, (long)width * 4, (start, end) =>
        {
            for (int t = start; t < end; t++)
            {
                long at = (long)t * width, rotary = (long)positions[t] * rotaryDims;
                Rotary((float*)qa + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
                Rotary((float*)ka + at, heads, headWidth, rotaryDims, cos + rotary, sin + rotary);
            }
        });
        if (profile is not null) profile.FusedRotaryMs += Lap(ref clock);
    }

    /// <summary>Residual, then the Memory Block of all tokens: ML₁ and ML₂ each hashed per token and gathered table-major;
    /// <paramref name="partial"/> (N·d floats) holds ML₂'s partial sums between chunk groups.</summary>
    private void TableMajorFeedforward(float* x, float* attended, int n, float* partial, float* scratch, ScoringProfile? profile)
    {
        float* inner = scratch;
        float* weights = scratch + ((long)n * hidden);
        int* rows = (int*)(weights + ((long)n * chunks));
        nint xa = (nint)x, ya = (nint)attended, ia = (nint)inner, wa = (nint)weights, ra = (nint)rows;
        long clock = Stopwatch.GetTimestamp();
        KernelParallel.For(n, (long)width * 8, (start, end) =>
        {
            float* normed = stackalloc float[width];
            long* wide = stackalloc long[chunks];
            for (int t = start; t < end; t++)
            {
                float* row = (float*)xa + ((long)t * width);
                RowKernels.Add((float*)ya + ((long)t * width), row, width);     // z = x + Attn(Norm(x))
                RmsNorm(row, ffnGain, width, ffnEpsilon, normed);
                HashInto(normed, expand, wide, (int*)ra + ((long)t * chunks), (float*)wa + ((long)t * chunks));
            }
        });
        if (profile is not null) profile.FusedHashMs += Lap(ref clock);
        Gather([new((nint)expand.Table, (nint)expand.Bias, (nint)inner, (nint)inner, hidden, false)], rows, weights, n, 1 << expand.Bits);
        if (profile is not null) profile.FusedGatherMs += Lap(ref clock);
        KernelParallel.For(n, (long)hidden * 8, (start, end) =>
        {
            float* innerNormed = stackalloc float[hidden];
            long* wide = stackalloc long[chunks];
            for (int t = start; t < end; t++)
            {
                LayerNorm((float*)ia + ((long)t * hidden), normWeight, normBias, hidden, (float)MemoryBlock.NormEpsilon, innerNormed);
                HashInto(innerNormed, project, wide, (int*)ra + ((long)t * chunks), (float*)wa + ((long)t * chunks));  // τ+2 bits
            }
        });
        if (profile is not null) profile.FusedHashMs += Lap(ref clock);
        Gather([new((nint)project.Table, (nint)project.Bias, (nint)x, (nint)partial, width, true)], rows, weights, n, 1 << project.Bits);
        if (profile is not null) profile.FusedGatherMs += Lap(ref clock);
    }

    /// <summary>The staged gathers: table-major (<see cref="ColumnSliceGather"/>) or token by token, parallel over tokens.</summary>
    private void Gather(ColumnSliceGather.Target[] targets, int* rows, float* weights, int n, int rowsPerChunk)
    {
        if (TableMajorGathers)
        {
            ColumnSliceGather.Run(targets, rows, weights, n, chunks, rowsPerChunk);
            return;
        }
        nint ra = (nint)rows, wa = (nint)weights;
        int widest = targets.Max(t => t.Width);
        KernelParallel.For(n, (long)chunks * targets.Sum(t => t.Width), (start, end) =>
        {
            float* sum = stackalloc float[widest];
            foreach (var target in targets)
            {
                int h = target.Width;
                for (int t = start; t < end; t++)
                {
                    float* output = (float*)target.Output + ((long)t * h);
                    if (target.AddToOutput)
                    {
                        BagSum((float*)target.Table, h, (int*)ra + ((long)t * chunks), (float*)wa + ((long)t * chunks), chunks, sum, (float*)target.Bias);
                        RowKernels.Add(sum, output, h);
                    }
                    else
                        BagSum((float*)target.Table, h, (int*)ra + ((long)t * chunks), (float*)wa + ((long)t * chunks), chunks, output, (float*)target.Bias);
                }
            }
        });
    }

    /// <summary>With staged passes (<see cref="Forward"/> given scratch): gather table-major (true) or token by token.</summary>
    public bool TableMajorGathers { get; set; } = true;

    /// <summary>One token's hash into int rows and weights (<paramref name="wide"/>: K longs of scratch).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void HashInto(float* input, Layer layer, long* wide, int* rows, float* weights)
    {
        SignHashKernel.HashRow(input, chunks, layer.Bits, layer.L1Scaled, layer.Scale, wide, weights, null);
        for (int c = 0; c < chunks; c++)
            rows[c] = (int)wide[c];
    }
}
