using System.ComponentModel;
using System.Globalization;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf scoring-kernels</c> (issue 16, scoring target, s15): a same-bits kernel switch of the scoring encoder timed on
/// one thread, on and off alternating within every round: the AVX-512 window attention with keys padded to 16 or 32
/// (<see cref="KernelSettings.ShortKeyTiles"/>) on windows of 128 tokens (the default layout's long rows), of 64–127 (the
/// <c>Even</c> layout's) and of 8–40 (short rows). Calls of a few milliseconds, so the fastest and the per-round ratios
/// survive a loaded machine better than the encoder's 20–50 ms forward.
/// </summary>
internal sealed class ScoringKernelsCommand : Command<ScoringKernelsCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--reps")]
        [Description("Rounds; each times every variant once, in a rotating order. Default 200.")]
        [DefaultValue(200)]
        public int Reps { get; init; } = 200;

        [CommandOption("--only")]
        [Description("Time only the kernels whose name contains this text (case-insensitive). Default: all.")]
        [DefaultValue("")]
        public string Only { get; init; } = "";
    }

    private static string only = "";

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        only = settings.Only;
        string machine = MachineFigures.Measure(settings);
        var table = new PerfTable("scoring-kernels", FormattableString.Invariant($"Scoring encoder kernels, one thread, each switch off and on alternating, {settings.Reps} rounds"),
            "kernel", "work", "off: median ms", "off: fastest", "on: median ms", "on: fastest", "median of per-round ratios off ÷ on");
        var random = new Random(5);
        var evenLike = Enumerable.Range(0, 48).Select(_ => random.Next(57, 129)).ToArray();    // lengths as Even windows of long rows have them
        foreach (var lengths in new[] { evenLike, Enumerable.Range(64, 64).ToArray(), Enumerable.Repeat(128, 32).ToArray() })
            Add(table, "attention, padded scores masked by one blended store a row and a short last group as four queries (on) or as before s20 (off; AttentionTails)",
                FormattableString.Invariant($"{lengths.Length} windows of {lengths.Min()}–{lengths.Max()} tokens"),
                Attention(lengths, on => KernelSettings.Current.AttentionTails = on), settings.Reps);
        foreach (var lengths in new[] { evenLike, Enumerable.Repeat(128, 32).ToArray() })
            Add(table, "attention, each score row's maximum taken as its scores are stored (on) or in a pass of the softmax (off; ScoresRowMax)",
                FormattableString.Invariant($"{lengths.Length} windows of {lengths.Min()}–{lengths.Max()} tokens"),
                Attention(lengths, on => KernelSettings.Current.ScoresRowMax = on), settings.Reps);
        foreach (var (name, lengths) in new[]
        {
            ("attention, 4 heads × hd 32, keys padded to 16 (on) or 32 (off)", Enumerable.Repeat(128, 32).ToArray()),
            ("attention, 4 heads × hd 32, keys padded to 16 (on) or 32 (off)", Enumerable.Range(64, 64).ToArray()),
            ("attention, 4 heads × hd 32, keys padded to 16 (on) or 32 (off)", Enumerable.Range(8, 33).ToArray()),
        })
            Add(table, name, FormattableString.Invariant($"{lengths.Length} windows of {lengths.Min()}–{lengths.Max()} tokens"),
                Attention(lengths, on => KernelSettings.Current.ShortKeyTiles = on), settings.Reps);
        foreach (var lengths in new[] { Enumerable.Repeat(128, 32).ToArray(), Enumerable.Range(64, 64).ToArray() })
            Add(table, "attention, the softmax's row max with vmaxps in two chains and the lean exp (on) or as before s18 (off)",
                FormattableString.Invariant($"{lengths.Length} windows of {lengths.Min()}–{lengths.Max()} tokens"),
                Attention(lengths, on => KernelSettings.Current.LeanSoftmax = on), settings.Reps);
        foreach (var (more, fewer) in new[] { (2, 1), (4, 2), (4, 1) })
            foreach (var lengths in new[] { Enumerable.Repeat(128, 32).ToArray(), Enumerable.Range(64, 64).ToArray() })
                Add(table, FormattableString.Invariant($"attention, the lean softmax {more} rows at a time (on) or {fewer} (off)"),
                    FormattableString.Invariant($"{lengths.Length} windows of {lengths.Min()}–{lengths.Max()} tokens"),
                    Attention(lengths, on => KernelSettings.Current.SoftmaxRows = on ? more : fewer), settings.Reps);
        foreach (var (width, bits) in new[] { (128, 8), (160, 10) })
            Add(table, FormattableString.Invariant($"sign hash (inference), {width} wide, 16 chunks of τ = {bits}: 16 lanes (on) or 8 (off)"),
                "4,096 tokens", Hash(4096, width, bits), settings.Reps);
        foreach (int tokens in new[] { 512, 4096 })
            Add(table, "Q, K, V gathers of one hash: one walk of the bag for the three tables (on) or one walk each (off)",
                FormattableString.Invariant($"{tokens:N0} tokens × 16 uniform random rows of three 2 MB tables (d = 128, τ = 8)"), QkvBags(tokens), settings.Reps);
        foreach (var (width, bits) in new[] { (128, 8), (160, 10) })
            Add(table, FormattableString.Invariant($"sign hash (inference, 16 lanes), {width} wide, τ = {bits}: the lean exp and gathered tail (on) or as before s18 (off)"),
                "4,096 tokens", LeanHash(4096, width, bits), settings.Reps);
        foreach (var lengths in new[] { Enumerable.Repeat(128, 32).ToArray(), Enumerable.Range(64, 64).ToArray() })
            Add(table, "attention, the lean exp's 2ⁿ by vscalefps (on) or in the exponent bits and a multiply (off; ScaledExp)",
                FormattableString.Invariant($"{lengths.Length} windows of {lengths.Min()}–{lengths.Max()} tokens"),
                Attention(lengths, on => KernelSettings.Current.ScaledExp = on), settings.Reps);
        foreach (var (width, bits) in new[] { (128, 8), (160, 10) })
            Add(table, FormattableString.Invariant($"sign hash (inference, 16 lanes), {width} wide, τ = {bits}: the lean exp's 2ⁿ by vscalefps (on) or as before (off; ScaledExp)"),
                "4,096 tokens", ScaledHash(4096, width, bits), settings.Reps);
        foreach (var (width, bits) in new[] { (128, 8), (160, 10) })
            Add(table, FormattableString.Invariant($"sign hash (inference), {width} wide, τ = {bits}: the scoring encoder's own kernel into int rows (on) or the general 16-lane kernel and int64 rows (off; ScoringSignHash)"),
                "4,096 tokens", DirectHash(4096, width, bits), settings.Reps);
        Add(table, "LayerNorm of two tokens' 160-wide hidden rows: both sum chains in one loop (on) or one row after the other (off; PairedLayerNorm)",
            "4,096 pairs of rows", LayerNormPairs(4096, 160), settings.Reps);
        table.AddNote("the same bits on and off (WindowAttentionKeyTileTests); a window of L tokens pads to 16 or 32 only in Q·Kᵀ, P·V reads the L real keys");
        table.AddNote("the hash rows: SignHashKernel.HashRow per token as the fused encoder calls it; τ = 8 on is KernelSettings.WideInferenceHash, τ = 10 on is WideSignHash (16 lanes already the default there)");
        table.AddNote(FormattableString.Invariant($"load average (1 min) {Timing.LoadAverage():F2} at the end"));
        table.AddNote(machine);
        table.Publish(settings.Output);
        return 0;
    }

    private static void Add(PerfTable table, string name, string work, Action<bool> body, int reps)
    {
        if (!name.Contains(only, StringComparison.OrdinalIgnoreCase))
            return;
        var times = Timing.InterleaveRounds([() => body(false), () => body(true)], reps);
        double ratio = Timing.Median(times[0].Zip(times[1], (off, on) => off / on));
        table.AddRow(name, work, Timing.Median(times[0]), times[0].Min(), Timing.Median(times[1]), times[1].Min(),
            ratio.ToString("F3", CultureInfo.InvariantCulture));
    }

    /// <summary>Q, K and V bag sums of <paramref name="n"/> tokens over three random 2 MB tables (16 chunks × 256 rows × 128),
    /// one walk (on) or three (off).</summary>
    private static unsafe Action<bool> QkvBags(int n)
    {
        const int k = 16, h = 128, rowsPerChunk = 256;
        var random = new Random(3);
        var tables = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, k * rowsPerChunk * h).Select(_ => (float)random.NextDouble()).ToArray()).ToArray();
        var rows = Enumerable.Range(0, n * k).Select(i => ((i % k) * rowsPerChunk) + random.Next(rowsPerChunk)).ToArray();
        var weights = Enumerable.Range(0, n * k).Select(_ => (float)random.NextDouble()).ToArray();
        var bias = Enumerable.Range(0, h).Select(_ => (float)random.NextDouble()).ToArray();
        var output = new float[3 * n * h];
        return on =>
        {
            fixed (float* a = tables[0], b = tables[1], c = tables[2], w = weights, i = bias, o = output)
            fixed (int* r = rows)
                for (int t = 0; t < n; t++)
                {
                    float* q = o + ((long)t * 3 * h);
                    if (on)
                        EncoderKernels.BagSum3(a, b, c, h, r + (t * k), w + (t * k), k, q, q + h, q + (2 * h), i, i, i);
                    else
                    {
                        EncoderKernels.BagSum(a, h, r + (t * k), w + (t * k), k, q, i);
                        EncoderKernels.BagSum(b, h, r + (t * k), w + (t * k), k, q + h, i);
                        EncoderKernels.BagSum(c, h, r + (t * k), w + (t * k), k, q + (2 * h), i);
                    }
                }
        };
    }

    /// <summary>The 16-lane inference sign hash of <paramref name="n"/> random rows, <see cref="KernelSettings.ScaledExp"/> on or off.</summary>
    private static unsafe Action<bool> ScaledHash(int n, int width, int bits)
    {
        var hash = Hash(n, width, bits);
        return on => KernelSettings.Current.With(s => s.ScaledExp = on, () => hash(true));
    }

    /// <summary>The 16-lane inference sign hash of <paramref name="n"/> random rows, <see cref="KernelSettings.LeanWideHash"/> on or off.</summary>
    private static unsafe Action<bool> LeanHash(int n, int width, int bits)
    {
        var hash = Hash(n, width, bits);
        return on => KernelSettings.Current.With(s => s.LeanWideHash = on, () => hash(true));
    }

    /// <summary>LayerNorms of <paramref name="pairs"/> pairs of random rows of <paramref name="n"/>: <see cref="EncoderKernels.LayerNormPair"/> (on) or two
    /// <see cref="EncoderKernels.LayerNorm"/> calls (off).</summary>
    private static unsafe Action<bool> LayerNormPairs(int pairs, int n)
    {
        var random = new Random(4);
        var x = Enumerable.Range(0, 2 * pairs * n).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var (gain, bias, y) = (Enumerable.Repeat(1.1f, n).ToArray(), Enumerable.Repeat(0.1f, n).ToArray(), new float[2 * n]);
        return on =>
        {
            fixed (float* p = x, g = gain, b = bias, o = y)
                for (int t = 0; t < pairs; t++)
                {
                    float* x0 = p + ((long)2 * t * n), x1 = x0 + n;
                    if (on)
                        EncoderKernels.LayerNormPair(x0, x1, g, b, n, 1e-5f, o, o + n);
                    else
                    {
                        EncoderKernels.LayerNorm(x0, g, b, n, 1e-5f, o);
                        EncoderKernels.LayerNorm(x1, g, b, n, 1e-5f, o + n);
                    }
                }
        };
    }

    /// <summary>The scoring encoder's hash of <paramref name="n"/> random rows as <c>FusedEncoderBlock</c> calls it: <see cref="ScoringSignHash"/> (on)
    /// or <see cref="SignHashKernel.HashRow"/> and the int64 rows narrowed (off).</summary>
    private static unsafe Action<bool> DirectHash(int n, int width, int bits)
    {
        int k = width / bits;
        var random = new Random(2);
        var x = Enumerable.Range(0, n * width).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var (rows, index, weights) = (new long[k], new int[k], new float[k]);
        return on => KernelSettings.Current.With(s => s.WideInferenceHash = true, () =>
        {
            fixed (float* p = x, w = weights)
            fixed (long* r = rows)
            fixed (int* i = index)
                for (int t = 0; t < n; t++)
                {
                    if (on)
                        ScoringSignHash.Hash(p + ((long)t * width), bits, true, -2f, i, w);
                    else
                    {
                        SignHashKernel.HashRow(p + ((long)t * width), k, bits, true, -2f, r, w, null);
                        for (int c = 0; c < k; c++)
                            i[c] = (int)r[c];
                    }
                }
        });
    }

    /// <summary>The inference sign hash of <paramref name="n"/> random rows, token by token, 16 lanes (on) or 8 (off).</summary>
    private static unsafe Action<bool> Hash(int n, int width, int bits)
    {
        int k = width / bits;
        var random = new Random(2);
        var x = Enumerable.Range(0, n * width).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var rows = new long[k];
        var weights = new float[k];
        return on => KernelSettings.Current.With(s => (s.WideSignHash, s.WideInferenceHash) = (on, on), () =>
        {
            fixed (float* p = x, w = weights)
            fixed (long* r = rows)
                for (int t = 0; t < n; t++)
                    SignHashKernel.HashRow(p + ((long)t * width), k, bits, true, -2f, r, w, null);
        });
    }

    /// <summary>Every window's heads on the calling thread (<see cref="WindowAttention.Window"/>), the switch set by
    /// <paramref name="set"/> for the call and restored on after it.</summary>
    private static unsafe Action<bool> Attention(int[] lengths, Action<bool> set)
    {
        const int heads = 4, hd = 32, d = heads * hd;
        int n = lengths.Sum();
        var random = new Random(1);
        var data = Enumerable.Range(0, 4 * n * d).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var scratch = new float[WindowAttention.ScratchFloats(hd, lengths.Max())];
        var starts = new int[lengths.Length + 1];
        for (int w = 0; w < lengths.Length; w++) starts[w + 1] = starts[w] + lengths[w];
        return on =>
        {
            set(on);
            fixed (float* p = data, s = scratch)
                for (int w = 0; w < lengths.Length; w++)
                    WindowAttention.Window(p, p + (n * d), p + (2 * n * d), p + (3 * n * d), heads, hd, starts[w], lengths[w], s);
            set(true);
        };
    }
}
