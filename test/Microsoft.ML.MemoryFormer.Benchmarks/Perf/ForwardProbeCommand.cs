using System.ComponentModel;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf probe-forward</c> (issue 16, forward gather, third round): today's token-major forward kernel against
/// <see cref="TiledGather"/> (16-column tiles copied into an L2 scratch, threads owning output tiles) for several cuts,
/// at h = 512, τ = 8 (K = 64), interleaved, plus the tile copy alone and Q/K/V (three tables, one set of rows).
/// </summary>
internal sealed class ForwardProbeCommand : Command<ForwardProbeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--tokens")]
        [Description("Comma-separated N values. Default 4096,1024,512.")]
        [DefaultValue("4096,1024,512")]
        public string Tokens { get; init; } = "4096,1024,512";

        [CommandOption("--width")]
        [Description("h = d (K = d/8 chunks of 256 rows). Default 512 (33.5 MB tables); 256 gives the 8 MB tables of d = 256.")]
        [DefaultValue(512)]
        public int Width { get; init; } = 512;

        [CommandOption("--rounds")]
        [Description("Interleaved rounds (median of per-round ratios). Default 7; --quick uses 3.")]
        [DefaultValue(7)]
        public int Rounds { get; init; } = 7;
    }

    private const int Bits = 8, BucketRows = 1 << Bits;
    private static int Width = 512, Chunks = Width / Bits, RowCount = Chunks * BucketRows;

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        if (!TiledGather.IsAccelerated)
        {
            Console.Error.WriteLine("perf probe-forward needs AVX-512; the tiled kernel has no fallback.");
            return 1;
        }
        string machine = MachineFigures.Measure(settings);
        int rounds = settings.Quick ? 3 : settings.Rounds;
        (Width, Chunks) = (settings.Width, settings.Width / Bits);
        RowCount = Chunks * BucketRows;
        random.manual_seed(11);
        var tables = Enumerable.Range(0, 3).Select(_ => randn(RowCount, Width).mul_(0.02)).ToArray();
        using var bias = randn(Width);
        var result = new PerfTable("probe-forward", $"Forward gather: today's token-major kernel vs TiledGather (16-column tiles in an L2 scratch), K={Chunks}, h={Width}, {(long)RowCount * Width * 4 / 1e6:F1} MB tables",
            "N", "variant", "ms", "today ÷ this (> 1: this faster)", "max |Δ| vs today");
        foreach (int n in settings.Tokens.Split(',').Select(int.Parse))
            Probe(result, n, tables, bias, rounds);
        result.AddNote($"{rounds} interleaved rounds of all rows of one N; ratio = median of the per-round ratios (lowest–highest round)");
        result.AddNote("G = chunks per group (0: 512 KB of tile), T = tokens interleaved; tile-major = the table copied whole to [h/16][R][16] first, strided = each thread copies its tile's column slice; 'copy only' = that copy alone, no gather");
        result.AddNote("rows: uniform random bucket per chunk; weights U(0,1); bias on; hashing excluded");
        result.AddNote(machine);
        result.Publish(settings.Output);
        foreach (var t in tables)
            t.Dispose();
        return 0;
    }

    private static unsafe void Probe(PerfTable result, int n, Tensor[] tables, Tensor bias, int rounds)
    {
        var rows = new int[n * Chunks];
        var generator = new Random(11);
        for (int i = 0; i < rows.Length; i++)
            rows[i] = ((i % Chunks) * BucketRows) + generator.Next(BucketRows);
        using var weights = rand(n, Chunks);
        var outputs = Enumerable.Range(0, 4).Select(_ => empty(n, Width)).ToArray();
        nint wp = (nint)TensorMemory.Floats(weights), bp = (nint)TensorMemory.Floats(bias);
        var tp = tables.Select(t => (nint)TensorMemory.Floats(t)).ToArray();
        var op = outputs.Select(o => (nint)TensorMemory.Floats(o)).ToArray();
        using var reference = empty(n, Width);
        using var referenceQkv = empty(3, n, Width);
        nint rp = (nint)TensorMemory.Floats(reference);

        void Today(int tableCount, nint firstOut)
        {
            KernelParallel.For(n, (long)Chunks * Width * tableCount, (start, end) =>
            {
                fixed (int* r = rows)
                    for (int t = 0; t < tableCount; t++)
                        for (int i = start; i < end; i++)
                            RowKernels.WeightedBagSum((float*)tp[t], Width, r + ((long)i * Chunks), (float*)wp + ((long)i * Chunks), Chunks,
                                (t == 0 ? (float*)firstOut : (float*)op[t]) + ((long)i * Width), (float*)bp);
            });
        }
        void Tiled(int tableCount, TiledGather.Plan plan, nint firstOut) =>
            TiledGather.Forward(rows, true, n, Chunks, RowCount, wp, tp[..tableCount], Enumerable.Repeat(Width, tableCount).ToArray(),
                Enumerable.Repeat(bp, tableCount).ToArray(), [firstOut, .. op[1..tableCount]], plan);
        void CopyOnly()
        {
            KernelParallel.For(Width / TiledGather.TileWidth, (long)n * Chunks * TiledGather.TileWidth, (start, end) =>
            {
                var scratch = new float[BucketRows * 32 * TiledGather.TileWidth];
                fixed (float* s = scratch)
                    for (int tile = start; tile < end; tile++)
                        for (int g = 0; g * 32 < Chunks; g++)
                            TiledGather.CopyTile((float*)tp[0], Width, tile * TiledGather.TileWidth, TiledGather.TileWidth, g * 32L * BucketRows,
                                Math.Min(RowCount, (g + 1) * 32L * BucketRows), s);
            });
        }
        using var tileMajor = empty(RowCount, Width);
        void TileMajorOnly() => TiledGather.ToTileMajor((float*)tp[0], Width, RowCount, TensorMemory.Floats(tileMajor));
        void TileMajorStreamingOnly() => TiledGather.ToTileMajor((float*)tp[0], Width, RowCount, TensorMemory.Floats(tileMajor), streaming: true);

        Today(1, rp);
        TiledGather.Plan[] plans = [new(0, 4, true), new(0, 8, true), new(0, 4, true, true), new(0, 8, true, true), new(0, 8, true, true, true), new(16, 8, true, true), new(0, 4, false), new(0, 8, false)];
        var names = new List<string> { "today, 1 table" };
        var bodies = new List<Action> { () => Today(1, op[0]) };
        var deltas = new List<string> { "—" };
        foreach (var plan in plans)
        {
            Tiled(1, plan, op[0]);
            deltas.Add($"{outputs[0].sub(reference).abs().max().item<float>():G2}");
            names.Add($"tiled G{plan.GroupChunks} T{plan.Tokens} {(plan.TileMajor ? plan.StageGroup ? "tile-major staged" : "tile-major" : "strided")}{(plan.StreamingCopy ? ", streaming copy" : "")}, 1 table");
            bodies.Add(() => Tiled(1, plan, op[0]));
        }
        names.Add("strided tile copy only (1 table, all tiles)");
        bodies.Add(CopyOnly);
        deltas.Add("—");
        names.Add("tile-major copy only (1 table)");
        bodies.Add(TileMajorOnly);
        deltas.Add("—");
        names.Add("tile-major copy only, streaming stores (1 table)");
        bodies.Add(TileMajorStreamingOnly);
        deltas.Add("—");
        int qkv = names.Count;
        names.Add("today, Q/K/V (3 tables)");
        bodies.Add(() => Today(3, op[0]));
        deltas.Add("—");
        names.Add("tiled default, Q/K/V (3 tables)");
        bodies.Add(() => Tiled(3, TiledGather.Plan.Default, op[0]));
        deltas.Add("—");

        var times = Timing.InterleaveRounds(bodies.ToArray(), rounds);
        string Ratio(int baseline, int body)
        {
            var ratios = times[baseline].Zip(times[body], (a, b) => a / b).Order().ToArray();
            return FormattableString.Invariant($"{Timing.Median(ratios):F2} ({ratios[0]:F2}–{ratios[^1]:F2})");
        }
        for (int b = 0; b < names.Count; b++)
        {
            int baseline = b < qkv ? 0 : qkv;
            result.AddRow(n, names[b], Timing.Median(times[b]), b == baseline ? "—" : Ratio(baseline, b), deltas[b]);
        }
        long faults = PageFaults.Minor();
        for (int call = 0; call < 5; call++)
            Tiled(3, TiledGather.Plan.Default, op[0]);
        result.AddRow(n, "minor page faults per call, tiled default, Q/K/V (5 calls after the timing)", (PageFaults.Minor() - faults) / 5.0, "—", "—");
        foreach (var o in outputs)
            o.Dispose();
    }
}
