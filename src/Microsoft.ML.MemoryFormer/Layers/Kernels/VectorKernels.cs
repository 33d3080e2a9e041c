using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The small per-token operations of a decode step over raw fp32 vectors — norms, rotary, attention of one query
/// against a KV cache — for <see cref="FusedDecodeBlock"/>. Each replaces a handful of torch ops whose dispatch
/// costs more than their arithmetic at batch 1. Reductions accumulate in fp32 like the torch ops.
/// </summary>
internal static unsafe class VectorKernels
{
    /// <summary>RMSNorm as <see cref="RmsNorm"/>: y = x / (‖x‖₂/√d + ε) · g.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm(float* x, float* gain, int d, float epsilon, float* y)
    {
        float scale = 1f / ((MathF.Sqrt(RowKernels.Dot(x, x, d)) / MathF.Sqrt(d)) + epsilon);
        for (int i = 0; i < d; i++)
            y[i] = x[i] * scale * gain[i];
    }

    /// <summary>LayerNorm over n values: y = (x − mean) / √(var + ε) · w + b, biased variance as torch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void LayerNorm(float* x, float* weight, float* bias, int n, float epsilon, float* y)
    {
        float mean = 0f;
        for (int i = 0; i < n; i++)
            mean += x[i];
        mean /= n;
        float variance = 0f;
        for (int i = 0; i < n; i++)
        {
            float c = x[i] - mean;
            variance += c * c;
        }
        float inverse = 1f / MathF.Sqrt((variance / n) + epsilon);
        for (int i = 0; i < n; i++)
            y[i] = ((x[i] - mean) * inverse * weight[i]) + bias[i];
    }

    /// <summary>
    /// Rotary (rotate-half) on the first r dims of each of <paramref name="heads"/> heads of width hd, in place, with
    /// one position's cos/sin rows [r] as <see cref="RotaryEmbedding"/>: x·cos + [−x₂, x₁]·sin.
    /// </summary>
    public static void Rotary(float* x, int heads, int headWidth, int r, float* cos, float* sin)
    {
        int half = r / 2;
        for (int h = 0; h < heads; h++)
        {
            float* v = x + (h * headWidth);
            for (int i = 0; i < half; i++)
            {
                float x1 = v[i], x2 = v[i + half];
                v[i] = (x1 * cos[i]) - (x2 * sin[i]);
                v[i + half] = (x2 * cos[i + half]) + (x1 * sin[i + half]);
            }
        }
    }

    /// <summary>
    /// Softmax attention of one query q [H·hd] over the first <paramref name="length"/> positions of a batch-1 cache
    /// keys/values [H, C, hd] → y [H·hd], scale 1/√hd as scaled_dot_product_attention. scores needs ≥ length floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Attend(float* q, float* keys, float* values, int heads, int capacity, int headWidth, int length,
        float* scores, float* y)
    {
        float scale = 1f / MathF.Sqrt(headWidth);
        for (int h = 0; h < heads; h++)
        {
            float* qh = q + (h * headWidth), yh = y + (h * headWidth);
            float* kh = keys + ((long)h * capacity * headWidth), vh = values + ((long)h * capacity * headWidth);
            float max = float.NegativeInfinity;
            for (int j = 0; j < length; j++)
            {
                scores[j] = RowKernels.Dot(qh, kh + ((long)j * headWidth), headWidth) * scale;
                max = MathF.Max(max, scores[j]);
            }
            float sum = 0f;
            for (int j = 0; j < length; j++)
            {
                scores[j] = MathF.Exp(scores[j] - max);
                sum += scores[j];
            }
            new Span<float>(yh, headWidth).Clear();
            for (int j = 0; j < length; j++)
                Axpy(scores[j] / sum, vh + ((long)j * headWidth), yh, headWidth);
        }
    }

    /// <summary>y += a · x over n floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Axpy(float a, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var av = Vector256.Create(a);
            for (; i + 8 <= n; i += 8)
                (Vector256.Load(y + i) + (av * Vector256.Load(x + i))).Store(y + i);
        }
        for (; i < n; i++)
            y[i] += a * x[i];
    }
}
