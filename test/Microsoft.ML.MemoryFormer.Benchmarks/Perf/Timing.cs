using Microsoft.ML.MemoryFormer.Runtime;
using System.Diagnostics;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>Plain Stopwatch timing for whole-model runs: warm-up calls, then the median of timed repeats.</summary>
internal static class Timing
{
    /// <summary>Median milliseconds of <paramref name="repeats"/> calls after <paramref name="warmup"/> untimed ones.</summary>
    public static Sample Measure(Action body, int warmup, int repeats)
    {
        for (int i = 0; i < warmup; i++)
            body();
        var times = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            long start = Stopwatch.GetTimestamp();
            body();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return new Sample(times[repeats / 2], times[0], times[^1]);
    }

    /// <summary>Like <see cref="Measure"/>, but each timed repeat loops <paramref name="body"/> until it lasts ≥ <paramref name="minMs"/>.</summary>
    public static Sample MeasureLooped(Action body, int warmup, int repeats, double minMs)
    {
        var (looped, loops) = Looped(body, warmup, minMs);
        return Measure(looped, 0, repeats).Scale(1.0 / loops);
    }

    /// <summary>
    /// Median milliseconds of each of <paramref name="bodies"/>, timed one call each per round, in turn, for
    /// <paramref name="rounds"/> rounds after one warm-up round: this machine drifts by ±30% within a minute, so
    /// variants compared side by side are timed interleaved. Each round starts one body later and odd rounds run backwards
    /// (<see cref="Rotation"/>), so no variant always sits in the same slot or follows the same one: a fixed order made one
    /// slot slow whichever path sat in it (2026-12-06).
    /// </summary>
    public static double[] Interleave(IReadOnlyList<Action> bodies, int rounds)
    {
        return InterleaveRounds(bodies, rounds).Select(Median).ToArray();
    }

    /// <summary>Like <see cref="Interleave"/>, but every round's milliseconds: [body][round], for per-round ratios.</summary>
    public static double[][] InterleaveRounds(IReadOnlyList<Action> bodies, int rounds)
    {
        var times = bodies.Select(_ => new double[rounds]).ToArray();
        for (int round = -1; round < rounds; round++)
        {
            foreach (int b in Rotation(bodies.Count, round))
            {
                long start = Stopwatch.GetTimestamp();
                bodies[b]();
                if (round >= 0)
                    times[b][round] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        return times;
    }

    /// <summary>The order of <paramref name="count"/> interleaved variants in <paramref name="round"/> (−1: the warm-up,
    /// in list order): each round starts one variant later than the one before, and odd rounds run the list backwards, so
    /// each variant follows both of its neighbours in turn (rotation alone kept every variant behind the same one). Two
    /// variants alternate as before.</summary>
    public static IEnumerable<int> Rotation(int count, int round)
    {
        int first = Math.Max(round, 0) % Math.Max(count, 1);
        bool backwards = round > 0 && round % 2 == 1;
        for (int k = 0; k < count; k++)
            yield return backwards ? (first - k + count) % count : (first + k) % count;
    }

    /// <summary>
    /// <paramref name="body"/> repeated so that one call of the result lasts ≥ <paramref name="minMs"/> (after
    /// <paramref name="warmup"/> untimed calls), with the repeat count, to time short calls.
    /// </summary>
    public static (Action Body, int Loops) Looped(Action body, int warmup, double minMs)
    {
        for (int i = 0; i < warmup; i++)
            body();
        long start = Stopwatch.GetTimestamp();
        body();
        double once = Math.Max(Stopwatch.GetElapsedTime(start).TotalMilliseconds, 1e-3);
        int loops = Math.Max(1, (int)Math.Ceiling(minMs / once));
        return (() => { for (int i = 0; i < loops; i++) body(); }, loops);
    }

    /// <summary>The middle value (the upper one of an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    /// <summary>Bytes <see cref="EvictCaches"/> writes: three times the L3 this machine reports, at least 96 MB (three times a
    /// Zen 4's 32 MB), so that afterwards tables, moments and ∂L/∂y come from memory, as a training step finds them. A fixed
    /// 96 MB left the Intel Xeon's 300 MB L3 holding them (2026-12-07).</summary>
    public static long EvictionBytes { get; } = Math.Max(96L << 20, 3 * CacheSizes.L3Bytes);

    /// <summary>How an eviction is described in tables' notes, e.g. "a 900 MB buffer (three times the 300 MB L3)".</summary>
    public static string EvictionNote => $"a {EvictionBytes >> 20} MB buffer (three times the {CacheSizes.L3Bytes >> 20} MB L3, at least 96 MB)";

    private static byte[]? evictionBuffer;

    /// <summary>Writes one byte of every 64-byte line of an <see cref="EvictionBytes"/> buffer: outside any timing, before a
    /// call that must find cold caches.</summary>
    public static void EvictCaches()
    {
        var buffer = evictionBuffer ??= new byte[EvictionBytes];
        for (long i = 0; i < buffer.LongLength; i += 64)
            buffer[i]++;
    }
    /// <summary>The load average of the last minute (Linux), reported next to every number.</summary>
    public static double LoadAverage()
    {
        try { return double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture); }
        catch (IOException) { return double.NaN; }
    }
}

/// <summary>A timing in milliseconds: median, fastest and slowest repeat.</summary>
internal readonly record struct Sample(double Median, double Min, double Max)
{
    public Sample Scale(double factor) => new(Median * factor, Min * factor, Max * factor);
}
