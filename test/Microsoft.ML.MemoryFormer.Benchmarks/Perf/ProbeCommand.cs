using System.ComponentModel;
using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf probe</c> (issue 16, item 1): what limits the Memory Layer's gather at d = h = 512, N = 4096, τ = 8. (a) The
/// same hits on tables of 1, 8 and 33.5 MB: if the small tables are much faster per hit, misses per row (latency, TLB)
/// or bandwidth limit today's kernel, not arithmetic. (b) A blocked gather and backward on a column-tiled table
/// (<see cref="BlockedGather"/>), for each tile width W and block size, timed interleaved against today's kernel.
/// </summary>
internal sealed class ProbeCommand : Command<ProbeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--tokens")]
        [Description("N. Default 4096.")]
        [DefaultValue(4096)]
        public int Tokens { get; init; } = 4096;

        [CommandOption("--rounds")]
        [Description("Interleaved rounds per comparison (median of the per-round ratios). Default 7; --quick uses 3.")]
        [DefaultValue(7)]
        public int Rounds { get; init; } = 7;

        [CommandOption("--row-major-only")]
        [Description("Run only (c), the blocked kernels on today's row-major table against the contiguous layout.")]
        public bool RowMajorOnly { get; init; }
    }

    private const int Width = 512, Bits = 8, Chunks = Width / Bits, BucketRows = 1 << Bits;

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        if (!Vector512.IsHardwareAccelerated)
        {
            Console.Error.WriteLine("perf probe needs AVX-512 (Vector512 accelerated); the blocked kernels have no fallback.");
            return 1;
        }
        string machine = MachineFigures.Measure(settings);
        int n = settings.Tokens, rounds = settings.Quick ? 3 : settings.Rounds;
        random.manual_seed(11);
        var rows = new int[n * Chunks];
        var generator = new Random(11);
        for (int i = 0; i < rows.Length; i++)
            rows[i] = ((i % Chunks) * BucketRows) + generator.Next(BucketRows);
        using var weights = rand(n, Chunks);
        using var table = randn(Chunks * BucketRows, Width).mul_(0.02);
        using var dy = randn(n, Width);

        if (!settings.RowMajorOnly)
        {
            TableSizes(settings, rows, weights, n, rounds, machine);
            Blocked(settings, rows, weights, table, dy, n, rounds, machine);
        }
        RowMajor(settings, rows, weights, table, dy, n, rounds, machine);
        return 0;
    }

    /// <summary>(a) Today's forward kernel, the same N·K hits into tables of 1, 8 and 33.5 MB, interleaved.</summary>
    private static unsafe void TableSizes(Settings settings, int[] rows, Tensor weights, int n, int rounds, string machine)
    {
        long[] sizes = [1L << 20, 8L << 20, (long)Chunks * BucketRows * Width * 4];
        var tables = sizes.Select(bytes => randn(bytes / (4 * Width), Width)).ToArray();
        var folded = sizes.Select(bytes => rows.Select(r => (int)(r % (bytes / (4 * Width)))).ToArray()).ToArray();
        using var y = empty(n, Width);
        var bodies = sizes.Select((_, s) => (Action)(() => TodayForward(tables[s], folded[s], weights, n, y))).ToArray();
        var ms = Timing.InterleaveRounds(bodies, rounds).Select(Timing.Median).ToArray();
        var result = new PerfTable("probe-table-size", $"Today's gather forward, N={n}, K={Chunks}, h={Width}: the same {n * Chunks:N0} hits on tables of three sizes",
            "table", "ms", "ns per hit", "GB/s of rows read", "÷ 33.5 MB time");
        for (int s = 0; s < sizes.Length; s++)
        {
            double hits = (double)n * Chunks;
            result.AddRow($"{sizes[s] >> 20} MiB ({sizes[s] / 1e6:F1} MB)", ms[s], ms[s] * 1e6 / hits, hits * Width * 4 / (ms[s] * 1e6), ms[s] / ms[^1]);
        }
        result.AddNote($"{rounds} interleaved rounds, median; rows fold the 33.5 MB pattern (chunk k's bucket b = row k·256 + b) modulo the smaller table's rows");
        result.AddNote(machine);
        result.Publish(settings.Output);
        foreach (var t in tables)
            t.Dispose();
    }

    /// <summary>Today's forward loop (<c>FusedMemoryGather</c>'s), over int32 rows: one token per call of the row kernel.</summary>
    private static unsafe void TodayForward(Tensor table, int[] rows, Tensor weights, int n, Tensor y)
    {
        nint tp = (nint)TensorMemory.Floats(table), wp = (nint)TensorMemory.Floats(weights), yp = (nint)TensorMemory.Floats(y);
        KernelParallel.For(n, (long)Chunks * Width, (start, end) =>
        {
            fixed (int* r = rows)
                for (int i = start; i < end; i++)
                    RowKernels.WeightedBagSum((float*)tp, Width, r + ((long)i * Chunks), (float*)wp + ((long)i * Chunks), Chunks, (float*)yp + ((long)i * Width));
        });
    }

    /// <summary>
    /// (c) The blocked backward (and forward) on today's row-major table [K·256, h] against the same on the contiguous
    /// block layout: if the row-major one is within ≈ 15%, the stored format can stay. Also the library's fused gather
    /// forward + backward with <see cref="Runtime.KernelSettings.BlockedTableGradient"/> off and on.
    /// </summary>
    private static unsafe void RowMajor(Settings settings, int[] rows, Tensor weights, Tensor table, Tensor dy, int n, int rounds, string machine)
    {
        (int W, int G)[] contiguous = [(64, 8), (64, 4)];
        BlockedTableGradient.Plan[] plans = [new(64, 1), new(64, 2), new(64, 4), new(64, 8), new(128, 2), new(32, 8)];
        var tiled = contiguous.Select(_ => empty_like(table)).ToArray();
        using var tiledGrad = empty_like(table);
        using var grad = empty_like(table);
        using var partial = empty(Width / 32 * (long)n * Chunks);
        using var gradWeights = zeros(n, Chunks);
        using var y = empty(n, Width);
        using var rowsLong = tensor(rows.Select(r => (long)r).ToArray(), [n, Chunks]);
        using var tableGrad = table.detach().clone().requires_grad_(true);
        using var weightsGrad = weights.detach().clone().requires_grad_(true);
        nint tp = (nint)TensorMemory.Floats(table), wp = (nint)TensorMemory.Floats(weights), dyp = (nint)TensorMemory.Floats(dy),
            gp = (nint)TensorMemory.Floats(grad), tgp = (nint)TensorMemory.Floats(tiledGrad), pp = (nint)TensorMemory.Floats(partial),
            gwp = (nint)TensorMemory.Floats(gradWeights), yp = (nint)TensorMemory.Floats(y);
        var tiledPtrs = tiled.Select(t => (nint)TensorMemory.Floats(t)).ToArray();
        for (int c = 0; c < contiguous.Length; c++)
            BlockedGather.ToTiled((float*)tp, (float*)tiledPtrs[c], Chunks, BucketRows, Width, contiguous[c].W, contiguous[c].G);

        var names = new List<string>();
        var bodies = new List<Action>();
        void Add(string name, Action body)
        {
            names.Add(name);
            bodies.Add(body);
        }
        Add("today fwd", () => TodayForward(table, rows, weights, n, y));
        for (int c = 0; c < contiguous.Length; c++)
        {
            var (w, g) = contiguous[c];
            nint block = tiledPtrs[c];
            Add($"contiguous fwd W{w} G{g} ({g * BucketRows * w * 4 / 1024} KB), 4 tokens", () =>
            {
                fixed (int* r = rows)
                    BlockedGather.Forward((float*)block, r, (float*)wp, n, Chunks, BucketRows, Width, w, g, 4, (float*)yp);
            });
            Add($"row-major fwd W{w} G{g}, 4 tokens", () =>
            {
                fixed (int* r = rows)
                    BlockedGather.ForwardRowMajor((float*)tp, r, (float*)wp, n, Chunks, BucketRows, Width, w, g, 4, (float*)yp);
            });
        }
        int firstBackward = names.Count;
        for (int c = 0; c < contiguous.Length; c++)
        {
            var (w, g) = contiguous[c];
            nint block = tiledPtrs[c];
            Add($"contiguous bwd W{w} G{g} ({g * BucketRows * w * 4 / 1024} KB, in place, per-tile dots)", () =>
            {
                fixed (int* r = rows)
                    BlockedGather.Backward((float*)block, r, (float*)wp, (float*)dyp, n, Chunks, BucketRows, Width, w, g, (float*)tgp, (float*)pp, (float*)gwp);
            });
        }
        foreach (var plan in plans)
            Add($"row-major bwd W{plan.TileWidth} G{plan.GroupChunks} (library kernel, {plan.GroupChunks * BucketRows * plan.TileWidth * 4 / 1024} KB scratch)",
                () => BlockedTableGradient.Write(rows, n, Chunks, BucketRows, (float*)wp, (float*)tp, (float*)dyp, Width, (float*)gp, (float*)gwp, plan));
        int firstLibrary = names.Count;
        foreach (bool blocked in new[] { false, true })
            Add($"library gather fwd+bwd (autograd), blocked {(blocked ? "on" : "off")}", () => Runtime.KernelSettings.Current.With(k => k.BlockedTableGradient = blocked, () =>
            {
                using var scope = NewDisposeScope();
                tableGrad.grad = null;
                weightsGrad.grad = null;
                FusedMemoryGather.Apply(rowsLong, weightsGrad, tableGrad).backward([dy]);
            }));

        var times = Timing.InterleaveRounds(bodies.ToArray(), rounds);
        string Ratio(int baseline, int body)
        {
            var ratios = times[baseline].Zip(times[body], (a, b) => a / b).Order().ToArray();
            return FormattableString.Invariant($"{Timing.Median(ratios):F2} ({ratios[0]:F2}–{ratios[^1]:F2})");
        }
        var result = new PerfTable("probe-row-major", $"Blocked kernels on today's row-major table [K·256, h] vs the contiguous [K/G][h/W][G·256][W] layout, N={n}, K={Chunks}, h={Width}",
            "kernel", "ms", "baseline ÷ this (> 1: this faster)", "baseline");
        for (int b = 0; b < names.Count; b++)
        {
            int baseline = b < firstBackward ? 0 : b < firstLibrary ? firstBackward : firstLibrary;
            result.AddRow(names[b], Timing.Median(times[b]), b == baseline ? "—" : Ratio(baseline, b), names[baseline]);
        }
        result.AddNote($"{rounds} interleaved rounds of all rows; ratio = median of the per-round ratios (lowest–highest round)");
        result.AddNote("row-major bwd = BlockedTableGradient (a thread owns G chunks: their gradient accumulated in a contiguous scratch per W-column tile, streamed to the row-major buffer; table rows read with stride h)");
        result.AddNote(machine);
        result.Publish(settings.Output);
        foreach (var t in tiled)
            t.Dispose();
    }

    /// <summary>(b) For each tile width and block size: blocked forward (1 and 4 tokens interleaved) and forward + backward vs today's.</summary>
    private static unsafe void Blocked(Settings settings, int[] rows, Tensor weights, Tensor table, Tensor dy, int n, int rounds, string machine)
    {
        var result = new PerfTable("probe-blocked", $"Blocked gather on a [K/G][h/W][G·256][W] table vs today's kernel, N={n}, K={Chunks}, h={Width} (ratio = today ÷ blocked, > 1: blocked faster)",
            "W", "block KB", "G", "today fwd ms", "blocked fwd ms (1 tok)", "ratio", "blocked fwd ms (4 tok)", "ratio", "today fwd+bwd ms", "blocked fwd+bwd ms", "ratio", "max |Δ| y, dT, dw");
        using var rowsLong = tensor(rows.Select(r => (long)r).ToArray(), [n, Chunks]);
        using var tableGrad = table.detach().clone().requires_grad_(true);
        using var weightsGrad = weights.detach().clone().requires_grad_(true);
        using var yToday = empty(n, Width);
        using var yBlocked = empty(n, Width);
        void TodayForwardBackward()
        {
            using var scope = NewDisposeScope();
            tableGrad.grad = null;
            weightsGrad.grad = null;
            FusedMemoryGather.Apply(rowsLong, weightsGrad, tableGrad).backward([dy]);
        }
        TodayForwardBackward();
        using var refTableGrad = tableGrad.grad!.clone();
        using var refWeightGrad = weightsGrad.grad!.clone();
        TodayForward(table, rows, weights, n, yToday);

        foreach (int w in new[] { 32, 64, 128 })
            foreach (int blockKb in new[] { 256, 512 })
            {
                int g = blockKb * 1024 / (BucketRows * w * 4);
                using var tiled = empty_like(table);
                using var tiledGrad = empty_like(table);
                using var partial = empty(Width / w * (long)n * Chunks);
                using var gradWeights = empty(n, Chunks);
                using var gradBack = empty_like(table);
                float* tp = TensorMemory.Floats(tiled), gp = TensorMemory.Floats(tiledGrad), pp = TensorMemory.Floats(partial), gwp = TensorMemory.Floats(gradWeights);
                float* wp = TensorMemory.Floats(weights), dyp = TensorMemory.Floats(dy), yp = TensorMemory.Floats(yBlocked);
                BlockedGather.ToTiled(TensorMemory.Floats(table), tp, Chunks, BucketRows, Width, w, g);
                nint tpn = (nint)tp, gpn = (nint)gp, ppn = (nint)pp, wpn = (nint)wp, dypn = (nint)dyp, ypn = (nint)yp, gwpn = (nint)gwp;
                void Fwd(int interleave)
                {
                    fixed (int* r = rows)
                        BlockedGather.Forward((float*)tpn, r, (float*)wpn, n, Chunks, BucketRows, Width, w, g, interleave, (float*)ypn);
                }
                void FwdBwd()
                {
                    Fwd(4);
                    fixed (int* r = rows)
                        BlockedGather.Backward((float*)tpn, r, (float*)wpn, (float*)dypn, n, Chunks, BucketRows, Width, w, g, (float*)gpn, (float*)ppn, (float*)gwpn);
                }
                FwdBwd();
                BlockedGather.FromTiled(gp, TensorMemory.Floats(gradBack), Chunks, BucketRows, Width, w, g);
                double dyMax = yToday.sub(yBlocked).abs().max().item<float>(), dtMax = refTableGrad.sub(gradBack).abs().max().item<float>(),
                    dwMax = refWeightGrad.sub(gradWeights).abs().max().item<float>();

                Action[] bodies = [() => TodayForward(table, rows, weights, n, yToday), () => Fwd(1), () => Fwd(4), TodayForwardBackward, FwdBwd];
                var times = Timing.InterleaveRounds(bodies, rounds);
                string Ratio(int today, int blocked)
                {
                    var ratios = times[today].Zip(times[blocked], (a, b) => a / b).Order().ToArray();
                    return FormattableString.Invariant($"{Timing.Median(ratios):F2} ({ratios[0]:F2}–{ratios[^1]:F2})");
                }
                var ms = times.Select(Timing.Median).ToArray();
                result.AddRow(w, blockKb, g, ms[0], ms[1], Ratio(0, 1), ms[2], Ratio(0, 2), ms[3], ms[4], Ratio(3, 4), $"{dyMax:G2}, {dtMax:G2}, {dwMax:G2}");
            }
        result.AddNote($"{rounds} interleaved rounds per row (today fwd, blocked fwd ×2, today fwd+bwd, blocked fwd+bwd); ratio = median of the per-round ratios (lowest–highest round)");
        result.AddNote("today fwd+bwd = FusedMemoryGather through autograd (hit sort, row pass with weight-gradient dots, fresh table gradient); blocked fwd+bwd = blocked fwd (4 tokens) + blocked bwd (gradient block zeroed and accumulated in L2, per-tile dots summed in tile order)");
        result.AddNote("rows: uniform random bucket per chunk; weights U(0,1); hashing excluded from both");
        result.AddNote(machine);
        result.Publish(settings.Output);
    }
}
