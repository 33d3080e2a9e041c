using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>Training's causal softmax (<see cref="AttentionTiles.Softmax"/>) with the <c>vmaxps</c> row max it shares with
/// scoring (2026-12-07 s19) against the softmax before it (the IEEE 754-2019 <c>Vector512.Max</c> and a scalar reduction):
/// the same probabilities and log-sum-exp, bit for bit, on random rows and on rows of zeros of both signs and −∞.</summary>
public class AttentionTilesTests
{
    /// <summary><see cref="AttentionTiles.Softmax"/> as it was before s19, written out.</summary>
    private static unsafe float SoftmaxBefore(float* s, int n, int end)
    {
        int n16 = (n + 15) & ~15;
        for (int j = n; j < n16; j++) s[j] = float.NegativeInfinity;
        var max = Vector512.Create(float.NegativeInfinity);
        for (int j = 0; j < n16; j += 16) max = Vector512.Max(max, Vector512.Load(s + j));
        var m = Vector256.Max(max.GetLower(), max.GetUpper());
        float top = float.NegativeInfinity;
        for (int i = 0; i < 8; i++) top = Math.Max(top, m.GetElement(i));
        var topV = Vector512.Create(top);
        var sum = Vector512<float>.Zero;
        for (int j = 0; j < n16; j += 16)
        {
            var e = WindowAttention.Exp512(Vector512.Load(s + j) - topV);
            e.Store(s + j);
            sum += e;
        }
        float total = Vector512.Sum(sum);
        var inverse = Vector512.Create(1f / total);
        for (int j = 0; j < n16; j += 16) (Vector512.Load(s + j) * inverse).Store(s + j);
        new Span<float>(s + n16, end - n16).Clear();
        return top + MathF.Log(total);
    }

    /// <summary>Score rows of length n (padded to 32): random ones, and the edge rows a ±0 maximum can come from.</summary>
    private static IEnumerable<(string Name, float[] Row, int N)> Rows()
    {
        var random = new Random(5);
        foreach (int n in new[] { 1, 2, 15, 16, 17, 31, 32, 33, 47, 64, 65, 100 })
        {
            int end = (n + 31) / 32 * 32;
            float[] Row(Func<int, float> value) => [.. Enumerable.Range(0, end).Select(j => j < n ? value(j) : float.NaN)];   // NaN past n: must be overwritten
            yield return ($"random {n}", Row(_ => (float)((random.NextDouble() * 8) - 4)), n);
            yield return ($"+0 {n}", Row(_ => 0f), n);
            yield return ($"-0 {n}", Row(_ => -0f), n);
            yield return ($"±0 {n}", Row(j => j % 3 == 0 ? -0f : 0f), n);
            yield return ($"±0 and negatives {n}", Row(j => (j % 4) switch { 0 => -0f, 1 => 0f, _ => (float)(-random.NextDouble() * 3) }), n);
            yield return ($"-0 and -∞ {n}", Row(j => j % 2 == 1 ? float.NegativeInfinity : -0f), n);
            yield return ($"-∞ but the last {n}", Row(j => j == n - 1 ? -2.5f : float.NegativeInfinity), n);
            yield return ($"-∞ but one -0 {n}", Row(j => j == n / 2 ? -0f : float.NegativeInfinity), n);
            yield return ($"far apart {n}", Row(_ => (float)((random.NextDouble() * 200) - 100)), n);
        }
    }

    [SkippableFact]
    public unsafe void The_vmaxps_row_max_gives_the_softmax_and_lse_before_it_bit_for_bit()
    {
        Skip.IfNot(Vector512.IsHardwareAccelerated, "no AVX-512: training's managed attention is not used");
        int zeroMaxRows = 0;
        foreach (var (name, row, n) in Rows())
        {
            var (before, after) = ((float[])row.Clone(), (float[])row.Clone());
            float lseBefore, lseAfter;
            fixed (float* b = before, a = after)
            {
                lseBefore = SoftmaxBefore(b, n, row.Length);
                lseAfter = AttentionTiles.Softmax(a, n, row.Length);
            }
            Assert.True(BitConverter.SingleToInt32Bits(lseBefore) == BitConverter.SingleToInt32Bits(lseAfter), $"{name}: lse {lseBefore} → {lseAfter}");
            Assert.True(before.Select(BitConverter.SingleToInt32Bits).SequenceEqual(after.Select(BitConverter.SingleToInt32Bits)), $"{name}: probabilities differ");
            Assert.True(float.IsFinite(lseAfter) && after.Take(n).Sum() is > 0.999f and < 1.001f, $"{name}: not a distribution");
            if (row.Take(n).Max() == 0f) zeroMaxRows++;
        }
        Assert.True(zeroMaxRows > 30, "the rows whose maximum is a zero were not generated");
    }
}
