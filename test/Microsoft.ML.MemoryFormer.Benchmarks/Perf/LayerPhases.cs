using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// One Memory Layer call of a training step (<c>perf profile-phases</c>): a hash layer and the layers that read its codes
/// (the shared Q/K/V, or one layer), with the kernels of its forward and backward as separate timed bodies. The phases
/// that update tables work on clones (with their own bf16 moments), so they never change the model.
/// </summary>
internal sealed unsafe class LayerPhases : IDisposable
{
    public const string Whole = "whole call (fwd + bwd, update armed)";
    public const string Hash = "hash forward (with Jacobian)";
    public const string Gather = "gather forward (as dispatched)";
    public const string TokenMajor = "  token-major kernel forced";
    public const string WholeRatio = "before ÷ after, whole call (TiledSharedForward off ÷ on)";
    public const string GatherRatio = "before ÷ after, gather forward";
    public const string SweepRatio = "AdamW sweep alone, rows of h ÷ the same elements as rows of 4h";
    public const string PrefetchWholeRatio = "before ÷ after, whole call (PrefetchGatherRows off ÷ on)";
    public const string UpdatePrefetchRatio = "before ÷ after, row pass + fused AdamW (PrefetchUpdateRows off ÷ on)";
    public const string BothWholeRatio = "before ÷ after, whole call (both prefetches off ÷ on)";
    public const string PrefetchGatherRatio = "before ÷ after, token-major gather forward (PrefetchGatherRows off ÷ on)";
    public const string BiasSumsWholeRatio = "before ÷ after, whole call (ManagedBiasSums off ÷ on)";
    public const string BiasSumsRatio = "before ÷ after, bias gradients (ManagedBiasSums off ÷ on)";
    public const string TileCopyGatherRatio = "before ÷ after, gather forward (TileMajorCopyFromUpdate off ÷ on: table copied ÷ kept copy read)";
    public const string TileWriteRatio = "row pass + fused AdamW writing the kept tile-major copy ÷ not (its cost)";
    public const string GroupBytesRatio = "gather forward, tiled chunk groups of 512 KB ÷ 1 MB (TiledGroupBytes)";

    /// <summary>The rows of the before/after table: median of per-round ratios (lowest–highest).</summary>
    public static readonly string[] RatioNames = [WholeRatio, GatherRatio, SweepRatio, PrefetchWholeRatio, PrefetchGatherRatio, UpdatePrefetchRatio, BothWholeRatio,
        BiasSumsWholeRatio, BiasSumsRatio, TileCopyGatherRatio, TileWriteRatio, GroupBytesRatio];

    public const string Tiled = "  tiled kernel forced (where TiledGather.Pays)";
    public const string RowCopy = "  of it: int64 → int32 row copy";
    public const string Sort = "hit sort (chunked, shared by the tables)";
    public const string RowPassUpdate = "row pass + fused AdamW, all tables";
    public const string RowPass = "  row pass writing the gradient";
    public const string Sweep = "  AdamW sweep alone (bf16 moments)";
    public const string HashBackward = "hash backward (dx = ∂L/∂w · J)";
    public const string BiasSums = "bias gradients (Σ_n ∂L/∂y)";
    public const string Rest = "everything else (whole − the phases above)";

    /// <summary>The rows of the time table, in order.</summary>
    public static readonly string[] Names = [Whole, Hash, Gather, TokenMajor, Tiled, RowCopy, Sort, RowPassUpdate, RowPass, Sweep, HashBackward, BiasSums, Rest];

    /// <summary>The rows of the rate table.</summary>
    public static readonly string[] RateNames = [Gather, TokenMajor, Tiled, RowPassUpdate, RowPass, Sweep];

    private readonly MemoryLayer hashLayer;
    private readonly MemoryLayer[] layers;
    private readonly ModelOptimizer optimizer;
    private readonly List<IDisposable> owned = [];
    private readonly Tensor x, gradWeights;
    private readonly Tensor[] gradOuts, clones, moments1, moments2, gradients;
    private readonly TileMajorTableCopy[] cloneCopies;
    private readonly SignHashKernel.Result codes;
    private readonly int[] rows32;
    private readonly float[] weights32;
    private readonly RowHits hits;
    private readonly Tensor weightGrad;
    private readonly int n, k, rowCount;

    public LayerPhases(MemoryLayer hashLayer, MemoryLayer[] layers, int n, ModelOptimizer optimizer)
    {
        this.hashLayer = hashLayer;
        this.layers = layers;
        this.optimizer = optimizer;
        this.n = n;
        k = hashLayer.ChunkCount;
        rowCount = (int)layers.Min(l => l.Table.shape[0]);
        x = Own(randn(n, hashLayer.InputWidth).requires_grad_(true));
        gradWeights = Own(randn(n, k));
        gradOuts = layers.Select(l => Own(randn(n, l.OutputWidth))).ToArray();
        codes = SignHashKernel.Run(x, hashLayer.BitsPerChunk, l1Scaled: true, 1f, withJacobian: true);
        rows32 = codes.Rows.data<long>().Select(v => (int)v).ToArray();
        weights32 = codes.Weights.data<float>().ToArray();
        clones = layers.Select(l => Own(l.Table.detach().clone())).ToArray();
        moments1 = layers.Select(l => Own(zeros(l.Table.shape, ScalarType.BFloat16))).ToArray();
        moments2 = layers.Select(l => Own(zeros(l.Table.shape, ScalarType.BFloat16))).ToArray();
        gradients = layers.Select(l => Own(zeros_like(l.Table))).ToArray();
        cloneCopies = layers.Select(_ => new TileMajorTableCopy()).ToArray();
        weightGrad = Own(zeros(n, k));
        fixed (float* w = weights32)
            hits = RowHits.Build(rows32, rows32.Length, k, w, rowCount, chunked: true);
    }

    /// <summary>The call's shapes, for the table's note.</summary>
    public string Describe()
    {
        var t = layers[0].Table;
        double mb = t.shape[0] * t.shape[1] * 4.0 / (1 << 20);
        return $"K={k}, τ={hashLayer.BitsPerChunk}, {layers.Length} table(s) [{t.shape[0]}, {t.shape[1]}] of {mb:F1} MB, " +
            $"{(double)n * k / rowCount:F1} hits a row";
    }

    /// <summary>The rows of <see cref="Cold"/>: the fused pass and its two halves, each timed right after the caches were flushed.</summary>
    public static readonly string[] ColdNames = [RowPassUpdate, RowPass, Sweep];

    /// <summary>
    /// Milliseconds of one call of the fused pass and of each half (median of <paramref name="rounds"/> rounds, the three in turn),
    /// each call right after a write of <see cref="Timing.EvictionBytes"/> that evicts the tables, moments, gradients and ∂L/∂y from every cache level, as
    /// a training step finds them; the flush is outside the timing (wall or, with <see cref="CpuTime"/>, process CPU time). The
    /// looped phase table keeps part of a half's data in the L3 from one call to the next.
    /// </summary>
    public Dictionary<string, double> Cold(int rounds)
    {
        Action[] bodies = [RowPassWithUpdate, RowPassAlone, SweepAlone];
        var times = bodies.Select(_ => new double[rounds]).ToArray();
        foreach (var b in bodies)
            b();
        for (int round = 0; round < rounds; round++)
        {
            foreach (int b in Timing.Rotation(bodies.Length, round))
            {
                Timing.EvictCaches();
                double start = CpuTime ? ProcessCpuMs() : System.Diagnostics.Stopwatch.GetTimestamp();
                bodies[b]();
                times[b][round] = CpuTime ? ProcessCpuMs() - start
                    : System.Diagnostics.Stopwatch.GetElapsedTime((long)start).TotalMilliseconds;
            }
        }
        return ColdNames.Select((n, i) => (n, Timing.Median(times[i]))).ToDictionary(p => p.n, p => p.Item2);
    }

    /// <summary>Milliseconds per call of every phase (median of <paramref name="rounds"/> interleaved rounds) and the bytes each moves.</summary>
    public (Dictionary<string, double> Ms, Dictionary<string, double> Megabytes) Measure(int rounds)
    {
        var bodies = Bodies();
        var looped = bodies.Select(b => Timing.Looped(b.Body, 1, 20)).ToArray();
        var medians = Timing.Interleave(looped.Select(l => l.Body).ToArray(), rounds);
        var ms = bodies.Select((b, i) => (b.Name, Ms: medians[i] / looped[i].Loops)).ToDictionary(p => p.Name, p => p.Ms);
        ms[Rest] = ms[Whole] - ms[Hash] - ms[Gather] - ms[Sort] - ms[RowPassUpdate] - ms[HashBackward] - ms[BiasSums];
        return (ms, Bytes());
    }

    /// <summary>
    /// Milliseconds per call of every phase and the whole call with cold caches: before each timed single call an untimed pass
    /// writes <see cref="Timing.EvictionBytes"/> (three times the L3), so every phase starts from memory as it does in a training step, where the
    /// other blocks' work runs between two uses of a table. Median of <paramref name="rounds"/> rounds, bodies rotated.
    /// </summary>
    public Dictionary<string, double> MeasureCold(int rounds)
    {
        var bodies = Bodies();
        var times = bodies.Select(_ => new double[rounds]).ToArray();
        for (int round = -1; round < rounds; round++)
        {
            foreach (int i in Timing.Rotation(bodies.Count, round))
            {
                Timing.EvictCaches();
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                bodies[i].Body();
                if (round >= 0)
                    times[i][round] = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        var ms = bodies.Select((b, i) => (b.Name, Ms: Timing.Median(times[i]))).ToDictionary(p => p.Name, p => p.Ms);
        ms[Rest] = ms[Whole] - ms[Hash] - ms[Gather] - ms[Sort] - ms[RowPassUpdate] - ms[HashBackward] - ms[BiasSums];
        ms[WholeAfterPause] = Timing.Median(Enumerable.Range(0, rounds).Select(_ => AfterPause(WholeCall)));
        ms[WholeBackToBack] = Timing.Median(Enumerable.Range(0, rounds).Select(_ => BackToBack(WholeCall)));
        return ms;
    }

    /// <summary>The whole call timed alone after 20 ms asleep (caches as the previous call left them; idle threads asleep).</summary>
    public const string WholeAfterPause = "whole call after 20 ms asleep, caches warm";

    /// <summary>The second of two whole calls run back to back (as the warm table's looped timing runs them).</summary>
    public const string WholeBackToBack = "whole call right after another whole call";

    private static double AfterPause(Action body)
    {
        Thread.Sleep(20);
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        body();
        return System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    private static double BackToBack(Action body)
    {
        body();
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        body();
        return System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <summary>Before ÷ after (TiledSharedForward off ÷ on, and each switch's row) for the whole call, the gather forward or the
    /// row pass, each pair timed alternately for <paramref name="rounds"/> rounds: the median of the per-round ratios, and the lowest
    /// and highest. Rows not named by <paramref name="only"/> (substrings; null: all) are left empty.</summary>
    public Dictionary<string, string> Ratios(int rounds, string[]? only = null)
    {
        var tables = layers.Select(l => (Tensor)l.Table).ToArray();
        var biases = layers.Select(l => (Tensor)l.Bias).ToArray();
        void Forward() { using var s = NewDisposeScope(); using var g = no_grad(); FusedMemoryGather.ApplyMany(codes.Rows, codes.Weights, tables, null, biases); }
        // The kept copies made current first; a forward no backward follows reads them but never rebuilds or writes them.
        void SyncTileCopies()
        {
            for (int t = 0; t < layers.Length; t++)
                layers[t].TileCopy.Sync(layers[t].Table);
        }
        var tileCopies = layers.Select(l => l.TileCopy).ToArray();
        void KeptForward() { using var s = NewDisposeScope(); using var g = no_grad(); FusedMemoryGather.ApplyMany(codes.Rows, codes.Weights, tables, null, biases, tileCopies: tileCopies); }
        var pairs = new Dictionary<string, Func<string>>
        {
            [WholeRatio] = () => Ratio(WholeCall, rounds),
            [GatherRatio] = () => Ratio(Forward, rounds),
            [SweepRatio] = () => Pair(SweepAlone, () => SweepWide(4), rounds),
            [PrefetchWholeRatio] = () => Switched(c => c.PrefetchGatherRows = false, c => c.PrefetchGatherRows = true, WholeCall, rounds),
            [PrefetchGatherRatio] = () => Switched(TokenMajorWith(false), TokenMajorWith(true), Forward, rounds),
            [UpdatePrefetchRatio] = () => Switched(c => c.PrefetchUpdateRows = false, c => c.PrefetchUpdateRows = true, RowPassWithUpdate, rounds),
            [BothWholeRatio] = () => Switched(c => c.PrefetchUpdateRows = c.PrefetchGatherRows = false, c => c.PrefetchUpdateRows = c.PrefetchGatherRows = true,
                WholeCall, rounds),
            [BiasSumsWholeRatio] = () => Switched(c => c.ManagedBiasSums = false, c => c.ManagedBiasSums = true, WholeCall, rounds),
            [BiasSumsRatio] = () => Switched(c => c.ManagedBiasSums = false, c => c.ManagedBiasSums = true, BiasSumsAsDispatched, rounds),
            [TileCopyGatherRatio] = () =>
            {
                SyncTileCopies();
                return Switched(c => c.TileMajorCopyFromUpdate = false, c => c.TileMajorCopyFromUpdate = true, KeptForward, rounds);
            },
            [GroupBytesRatio] = () => Switched(c => { c.TiledForwardMinTableBytes = 0; c.TiledGroupBytes = 512 << 10; },
                c => { c.TiledForwardMinTableBytes = 0; c.TiledGroupBytes = 1 << 20; }, Forward, rounds),
            [TileWriteRatio] = () =>
            {
                SyncTileCopies();
                return Pair(() => RowPassWithUpdate(tileMajor: true), () => RowPassWithUpdate(tileMajor: false), rounds);
            },
        };
        return RatioNames.ToDictionary(n => n, n => only is null || only.Any(o => n.Contains(o, StringComparison.Ordinal)) ? pairs[n]() : "");
    }

    /// <summary>Before ÷ after of <paramref name="body"/> with the switches set by <paramref name="before"/> and <paramref name="after"/>.</summary>
    private static string Switched(Action<KernelSettings> before, Action<KernelSettings> after, Action body, int rounds) =>
        Pair(() => KernelSettings.Current.With(before, body), () => KernelSettings.Current.With(after, body), rounds);

    /// <summary>The token-major forward forced (both tiled gates past any table), its prefetch as <paramref name="prefetch"/>.</summary>
    private static Action<KernelSettings> TokenMajorWith(bool prefetch) => c =>
    {
        c.TiledForwardMinTableBytes = c.TiledForwardAlignedMinTableBytes = long.MaxValue;
        c.PrefetchGatherRows = prefetch;
    };

    private static string Ratio(Action after, int rounds) => Pair(() => Unsharing(after), after, rounds);

    /// <summary>Whether <see cref="Pair"/> and <see cref="Cold"/> take the process's CPU time (<c>clock_gettime</c>, all threads) instead of
    /// wall time: on the loaded shared machine the steadier of the two (<c>perf profile-phases --cpu-time</c>). Exact with one thread; with
    /// two, Linux counts a worker that is still running only up to its last scheduler tick, so short calls undercount.</summary>
    public static bool CpuTime { get; set; }

    private static string Pair(Action before, Action after, int rounds)
    {
        var times = CpuTime ? CpuRounds([before, after], rounds) : Timing.InterleaveRounds([before, after], rounds);
        var ratios = times[0].Zip(times[1], (b, a) => b / a).Order().ToArray();
        var c = System.Globalization.CultureInfo.InvariantCulture;
        return $"{Timing.Median(ratios).ToString("F2", c)} ({ratios[0].ToString("F2", c)}–{ratios[^1].ToString("F2", c)})";
    }

    /// <summary><see cref="Timing.InterleaveRounds"/> with the process's CPU milliseconds of each call instead of wall time.</summary>
    private static double[][] CpuRounds(Action[] bodies, int rounds)
    {
        var cpu = bodies.Select(_ => new double[rounds]).ToArray();
        int[] round = new int[bodies.Length];
        var timed = bodies.Select((b, i) => (Action)(() =>
        {
            double start = ProcessCpuMs();
            b();
            if (round[i] < rounds)
                cpu[i][round[i]] = ProcessCpuMs() - start;
            round[i]++;
        })).ToArray();
        foreach (var b in bodies)
            b();                                                              // the warm-up round, outside the record
        Timing.InterleaveRounds(timed, rounds - 1);                           // its own first round is recorded here as round 0
        return cpu;
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec time);

    /// <summary>CPU time of the whole process (CLOCK_PROCESS_CPUTIME_ID), ms, to the nanosecond.</summary>
    internal static double ProcessCpuMs()
    {
        ClockGetTime(2, out var t);
        return (t.Seconds * 1e3) + (t.Nanoseconds / 1e6);
    }

    private Dictionary<string, double> Bytes()
    {
        double rowBytes = 4.0 * n * k * layers.Sum(l => l.OutputWidth), outBytes = 4.0 * n * layers.Sum(l => l.OutputWidth);
        double elements = layers.Sum(l => (double)l.Table.numel());
        const double MB = 1 << 20;
        return new Dictionary<string, double>
        {
            [Gather] = (rowBytes + outBytes) / MB, [TokenMajor] = (rowBytes + outBytes) / MB, [Tiled] = (rowBytes + outBytes) / MB,
            [RowPass] = (rowBytes + (8 * elements)) / MB, [RowPassUpdate] = (rowBytes + (20 * elements)) / MB, [Sweep] = 20 * elements / MB,
        };
    }

    private List<(string Name, Action Body)> Bodies()
    {
        var tables = layers.Select(l => (Tensor)l.Table).ToArray();
        var biases = layers.Select(l => (Tensor)l.Bias).ToArray();
        void Forward() { using var s = NewDisposeScope(); using var g = no_grad(); FusedMemoryGather.ApplyMany(codes.Rows, codes.Weights, tables, null, biases); }
        void ForwardWith(long minBytes) => KernelSettings.Current.With(c => c.TiledForwardMinTableBytes = c.TiledForwardAlignedMinTableBytes = minBytes, Forward);
        return
        [
            (Whole, WholeCall),
            (Hash, () => { using var s = NewDisposeScope(); SignHashKernel.Run(x, hashLayer.BitsPerChunk, l1Scaled: true, 1f, withJacobian: true); }),
            (Gather, Forward),
            (TokenMajor, () => ForwardWith(long.MaxValue)),
            (Tiled, () => ForwardWith(0)),
            (RowCopy, () => PooledRows.From(codes.Rows, rowCount).Return()),
            (Sort, SortHits),
            (RowPassUpdate, RowPassWithUpdate),
            (RowPass, RowPassAlone),
            (Sweep, SweepAlone),
            (HashBackward, () => { using var s = NewDisposeScope(); SignHashKernel.Backward(gradWeights, codes.Jacobian!, hashLayer.BitsPerChunk); }),
            (BiasSums, BiasSumsAsDispatched),
        ];
    }

    /// <summary>The whole call looped for <paramref name="seconds"/> (a window for <c>perf record</c>): median ms per call.</summary>
    public double LoopWhole(double seconds)
    {
        var times = new List<double>();
        long end = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(seconds * System.Diagnostics.Stopwatch.Frequency);
        while (System.Diagnostics.Stopwatch.GetTimestamp() < end)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            WholeCall();
            times.Add(System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        return Timing.Median(times);
    }

    /// <summary>The whole call with its three stages timed inside the one sequence: ZeroGrad + hash forward (the module),
    /// the gather's autograd node forward, the backward (autograd). Median ms of each over <paramref name="calls"/> calls.</summary>
    public double[] SplitWhole(int calls)
    {
        var times = new double[3][];
        for (int i = 0; i < 3; i++)
            times[i] = new double[calls];
        for (int c = -2; c < calls; c++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            optimizer.ZeroGrad(2);
            using var scope = NewDisposeScope();
            x.grad = null;
            var codes = hashLayer.Hash(x);
            long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
            var ys = MemoryGather.ApplyShared(codes, layers);
            long t2 = System.Diagnostics.Stopwatch.GetTimestamp();
            TorchSharp.torch.autograd.backward(ys, gradOuts);
            long t3 = System.Diagnostics.Stopwatch.GetTimestamp();
            if (c < 0)
                continue;
            double f = 1000.0 / System.Diagnostics.Stopwatch.Frequency;
            times[0][c] = (t1 - t0) * f;
            times[1][c] = (t2 - t1) * f;
            times[2][c] = (t3 - t2) * f;
        }
        return times.Select(Timing.Median).ToArray();
    }

    /// <summary>The layer call as a training step runs it: this step's table update armed, hash + gather, backward.</summary>
    private void WholeCall()
    {
        optimizer.ZeroGrad(2);
        using var scope = NewDisposeScope();
        x.grad = null;
        var ys = MemoryGather.ApplyShared(hashLayer.Hash(x), layers);
        TorchSharp.torch.autograd.backward(ys, gradOuts);
    }

    /// <summary>The bias gradients as the backward takes them (<see cref="ColumnSums.Of"/>: the managed sum, or torch's where switched off).</summary>
    private void BiasSumsAsDispatched()
    {
        using var s = NewDisposeScope();
        foreach (var g in gradOuts)
            ColumnSums.Of(g);
    }

    private static void Unsharing(Action body) => KernelSettings.Current.With(c => c.TiledSharedForward = false, body);

    private void SortHits()
    {
        fixed (float* w = weights32)
            RowHits.Build(rows32, rows32.Length, k, w, rowCount, chunked: true).Dispose();
    }

    private TableGradientPass.RowPass Pass(int t, bool tileMajor = false) => new(hits, (nint)TensorMemory.Floats(clones[t]), (nint)TensorMemory.Floats(gradOuts[t]),
        layers[t].OutputWidth, (nint)TensorMemory.Floats(weightGrad), TileMajor: tileMajor ? cloneCopies[t].Sync(clones[t]) : 0);

    private TableUpdate Update(int t) => new(moments1[t], moments2[t], new AdamWKernel.Coefficients(1e-4, 0.9, 0.95, 1e-8, 0.1, 3, 1.0), Bf16Moments.Salt(3, t));

    /// <summary>The row pass with the fused AdamW over the clones; with <paramref name="tileMajor"/> each updated row also written into
    /// a tile-major copy of its clone, as the training backward does with <see cref="KernelSettings.TileMajorCopyFromUpdate"/>.</summary>
    private void RowPassWithUpdate(bool tileMajor)
    {
        for (int t = 0; t < layers.Length; t++)
            TableGradientPass.UpdateAll(Pass(t, tileMajor), (int)clones[t].shape[0], Update(t).Kernel());
    }

    private void RowPassWithUpdate() => RowPassWithUpdate(tileMajor: false);

    private void RowPassAlone()
    {
        for (int t = 0; t < layers.Length; t++)
            TableGradientPass.WriteAll(Pass(t), (int)clones[t].shape[0], gradients[t], accumulate: false);
    }

    private void SweepAlone()
    {
        for (int t = 0; t < layers.Length; t++)
        {
            var u = Update(t);
            AdamWKernel.Step(clones[t], gradients[t], u.ExpAvg, u.ExpAvgSq, u.Coefficients, u.Salt, lazy: false);
        }
    }

    private void SweepWide(int f)
    {
        for (int t = 0; t < layers.Length; t++)
        {
            var u = Update(t);
            long r = clones[t].shape[0] / f, w = clones[t].shape[1] * f;
            using var p = clones[t].view(r, w);
            using var g = gradients[t].view(r, w);
            using var m = u.ExpAvg.view(r, w);
            using var v = u.ExpAvgSq.view(r, w);
            AdamWKernel.Step(p, g, m, v, u.Coefficients, u.Salt, lazy: false);
        }
    }

    private Tensor Own(Tensor t)
    {
        owned.Add(t);
        return t;
    }

    public void Dispose()
    {
        hits.Dispose();
        foreach (var c in cloneCopies)
            c.Dispose();
        foreach (var o in owned)
            o.Dispose();
    }
}
