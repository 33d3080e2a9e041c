using System.ComponentModel;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf probe-rowpass</c> (issue 16, Memory Layer fourth round): the backward's row pass alone (table and weight
/// gradients, hit sort excluded) at h = 512, τ = 8 (K = 64), interleaved against: the same pass with every hit's ∂L/∂y
/// row folded into the first 256 tokens (a 512 KB ∂L/∂y that stays in L2: how much of the pass waits for ∂L/∂y), and the
/// <see cref="SlicedRowPass"/> probe kernel (32-column slices with ∂L/∂y's slice held in L2), and the row pass over a bf16
/// copy of ∂L/∂y (<see cref="Bf16GradientRows"/>: 128- or 256-column tiles, prefetch on or off, on 4 KB or 2 MB pages, with
/// and without the narrow). Wall and CPU time both: on this project's shared machine the process's CPU time is the steadier of the two.
/// </summary>
internal sealed class RowPassProbeCommand : Command<RowPassProbeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--tokens")]
        [Description("N. Default 4096.")]
        [DefaultValue(4096)]
        public int Tokens { get; init; } = 4096;

        [CommandOption("--rounds")]
        [Description("Interleaved rounds (median of per-round ratios). Default 9; --quick uses 3.")]
        [DefaultValue(9)]
        public int Rounds { get; init; } = 9;

        [CommandOption("--variants")]
        [Description("Comma-separated indices of the variants to time (0 = the library's row pass, the ratios' baseline). Default all.")]
        public string? Variants { get; init; }
    }

    private const int Width = 512, Chunks = 64, BucketRows = 256, RowCount = Chunks * BucketRows;

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string machine = MachineFigures.Measure(settings);
        int n = settings.Tokens, rounds = settings.Quick ? 3 : settings.Rounds;
        random.manual_seed(11);
        using var table = randn(RowCount, Width).mul_(0.02);
        using var gradOut = randn(n, Width);
        using var weights = rand(n, Chunks);
        var rows = new int[n * Chunks];
        var generator = new Random(11);
        for (int i = 0; i < rows.Length; i++)
            rows[i] = ((i % Chunks) * BucketRows) + generator.Next(BucketRows);
        var variants = Variants(rows, n, table, gradOut, weights);
        string check = CheckSliced(variants);
        if (settings.Variants is { } only)
            variants = only.Split(',').Select(int.Parse).Select(i => variants[i]).ToArray();
        var cpu = variants.Select(_ => new double[rounds]).ToArray();
        var process = System.Diagnostics.Process.GetCurrentProcess();
        var timed = variants.Select((v, i) => (Action)(() =>
        {
            process.Refresh();
            var before = process.TotalProcessorTime;
            v.Body();
            process.Refresh();
            cpu[i][Array.FindIndex(cpu[i], c => c == 0) is var at and >= 0 ? at : 0] = (process.TotalProcessorTime - before).TotalMilliseconds;
        })).ToArray();
        foreach (var v in variants)
            v.Body();                                                     // warm-up outside the CPU-time record
        var times = Timing.InterleaveRounds(timed, rounds);
        var result = new PerfTable("probe-rowpass", $"Row pass alone (table + weight gradients), h={Width}, K={Chunks}, N={n}: ms, median of {rounds} interleaved rounds",
            "variant", "ms", "first ÷ this (> 1: this faster)", "CPU ms (both threads)", "first ÷ this, CPU time");
        for (int v = 0; v < variants.Length; v++)
            result.AddRow(variants[v].Name, Timing.Median(times[v]), Timing.Median(times[0].Zip(times[v], (a, b) => a / b)),
                Timing.Median(cpu[v]), Timing.Median(cpu[0].Zip(cpu[v], (a, b) => a / b)));
        result.AddNote("CPU ms = the process's processor time during the call (both threads; unlike wall time, it leaves out time spent waiting for a core on a loaded machine)");
        result.AddNote("rows: uniform random bucket per chunk; hit sort outside the timing; the table gradient written with the library's stores");
        result.AddNote(check);
        result.AddNote(CheckBf16(variants, settings.Variants is null));
        result.AddNote(machine);
        result.Publish(settings.Output);
        return 0;
    }

    private static Tensor? weightGradient, tableGradient, forwardOutput, bf16Copy;

    /// <summary>Runs the library's pass and the sliced probe kernel once each: their table gradients' bytes and weight gradients.</summary>
    private static string CheckSliced((string Name, Action Body)[] variants)
    {
        weightGradient!.zero_();
        variants[0].Body();
        var whole = (Table: tableGradient!.clone(), Weights: weightGradient.clone());
        weightGradient.zero_();
        variants[4].Body();
        bool same = whole.Table.bytes.ToArray().AsSpan().SequenceEqual(tableGradient!.bytes.ToArray());
        float dw = (weightGradient - whole.Weights).abs().max().item<float>(), scale = whole.Weights.abs().max().item<float>();
        return $"check: the sliced kernel's table gradient is {(same ? "bit-identical to" : "DIFFERENT from")} the library row pass's; " +
            FormattableString.Invariant($"weight gradient max |Δ| {dw:G2} (max |∂L/∂w| {scale:G3}: rounding of the per-slice sums)");
    }

    /// <summary>The bf16 row pass against the fp32 one: the table and weight gradients' largest differences, relative to their largest values.</summary>
    private static string CheckBf16((string Name, Action Body)[] variants, bool all)
    {
        if (!all)
            return "check: bf16 not compared (a --variants subset)";
        weightGradient!.zero_();
        variants[0].Body();
        var exact = (Table: tableGradient!.clone(), Weights: weightGradient.clone());
        weightGradient.zero_();
        variants[19].Body();
        double Rel(Tensor a, Tensor b) => (a - b).abs().max().item<float>() / (double)b.abs().max().item<float>();
        return FormattableString.Invariant($"check: bf16 ∂L/∂y vs fp32: table gradient max |Δ| / max |g| {Rel(tableGradient, exact.Table):G3}, weight gradient {Rel(weightGradient, exact.Weights):G3}");
    }

    /// <summary>A never-freed 2 MB-aligned native block of <paramref name="bytes"/>, advised onto huge pages before its first write.</summary>
    private static unsafe nint Huge(long bytes)
    {
        var block = System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 2 << 20);
        HugePages.Advise(block, bytes);
        return (nint)block;
    }

    private static void Narrow128(Action body)
    {
        Bf16RowGradientKernel.WideTiles = false;
        try { body(); } finally { Bf16RowGradientKernel.WideTiles = true; }
    }

    private static void Prefetched(Action body)
    {
        TableGradientPass.RowPass.PrefetchBf16Rows = true;
        try { body(); } finally { TableGradientPass.RowPass.PrefetchBf16Rows = false; }
    }

    private static void WithBlock(int rows, Action body)
    {
        int saved = SlicedRowPass.BlockRows;
        SlicedRowPass.BlockRows = rows;
        try { body(); } finally { SlicedRowPass.BlockRows = saved; }
    }

    private static unsafe (string Name, Action Body)[] Variants(int[] rows, int n, Tensor table, Tensor gradOut, Tensor weights)
    {
        var hits = RowHits.Build(rows, rows.Length, Chunks, TensorMemory.Floats(weights), RowCount, chunked: true);
        var folded = RowHits.Build(rows, rows.Length, Chunks, TensorMemory.Floats(weights), RowCount, chunked: true);
        for (int i = 0; i < folded.Pairs; i++)
            folded.Tokens[i] &= 255;
        weightGradient = zeros(n, Chunks);                                // fields: a tensor only a pointer refers to would be finalized
        tableGradient = zeros_like(table);
        var gw = weightGradient;
        var gt = tableGradient;
        nint tp = (nint)TensorMemory.Floats(table), gp = (nint)TensorMemory.Floats(gradOut), wp = (nint)TensorMemory.Floats(gw);
        void Pass(RowHits h) => TableGradientPass.WriteAll(new TableGradientPass.RowPass(h, tp, gp, Width, wp), RowCount, gt, accumulate: false);
        void Sliced() => SlicedRowPass.WriteAll(new TableGradientPass.RowPass(hits, tp, gp, Width, wp), n, RowCount, TensorMemory.Floats(gt));
        var outputs = empty(n, Width);
        forwardOutput = outputs;
        nint op = (nint)TensorMemory.Floats(outputs), weightPtr = (nint)TensorMemory.Floats(weights);
        var narrowed = empty(n, Width / 2);                               // the paired bf16 copy of ∂L/∂y (Bf16GradientRows)
        bf16Copy = narrowed;
        nint np = (nint)TensorMemory.Floats(narrowed);
        void Narrow() => Bf16GradientRows.Narrow((float*)gp, (uint*)np, n, Width);
        Narrow();
        void Bf16Pass(RowHits h) => TableGradientPass.WriteAll(new TableGradientPass.RowPass(h, tp, gp, Width, wp, np), RowCount, gt, accumulate: false);
        // The same two matrices on 2 MB pages (HugePages): how much of a hit's wait is the page walk of its random row.
        nint hugeGrad = Huge(n * (long)Width * sizeof(float)), hugeBf16 = Huge(n * (long)Width * 2);
        gradOut.bytes.ToArray().AsSpan().CopyTo(new Span<byte>((void*)hugeGrad, n * Width * sizeof(float)));
        Bf16GradientRows.Narrow((float*)gp, (uint*)hugeBf16, n, Width);
        void Forward() => Cut(TiledGather.Plan.Default);
        void Cut(TiledGather.Plan plan) => TiledGather.Forward(rows, chunked: true, n, Chunks, RowCount, weightPtr, [tp], [Width], [0], [op], plan);
        return
        [
            ("row pass, whole rows (the library's)", () => Pass(hits)),
            ("  the same, prefetch off", () => KernelSettings.Current.With(k => k.PrefetchHitRows = false, () => Pass(hits))),
            ("  the same, ∂L/∂y folded into 256 tokens (512 KB: L2)", () => Pass(folded)),
            ("  the same, folded, prefetch off", () => KernelSettings.Current.With(k => k.PrefetchHitRows = false, () => Pass(folded))),
            ("32-column slices (probe kernel), blocks of 4096 rows", Sliced),
            ("  the same, blocks of 1024 rows", () => WithBlock(1024, Sliced)),
            ("  the same, blocks of 8192 rows", () => WithBlock(8192, Sliced)),
            ("  the same, ∂L/∂y folded into 256 tokens (32 KB a slice: L1)", () => SlicedRowPass.WriteAll(new TableGradientPass.RowPass(folded, tp, gp, Width, wp), n, RowCount, TensorMemory.Floats(gt))),
            ("  the same, no weight gradient", () => SlicedRowPass.WriteAll(new TableGradientPass.RowPass(hits, tp, gp, Width, 0), n, RowCount, TensorMemory.Floats(gt))),
            ("tiled forward, one table (for scale)", Forward),
            ("  the same, groups of 16 chunks (256 KB)", () => Cut(TiledGather.Plan.Default with { GroupChunks = 16 })),
            ("  the same, groups of 8 chunks (128 KB)", () => Cut(TiledGather.Plan.Default with { GroupChunks = 8 })),
            ("row pass, bf16 ∂L/∂y, 128-column tiles, prefetch on, incl. its narrow", () => Narrow128(() => Prefetched(() => { Narrow(); Bf16Pass(hits); }))),
            ("  the same, pass alone (copy made before)", () => Narrow128(() => Prefetched(() => Bf16Pass(hits)))),
            ("  the same, prefetch off", () => Narrow128(() => Bf16Pass(hits))),
            ("  the narrow alone (8 MB fp32 → 4 MB bf16)", Narrow),
            ("row pass, fp32 ∂L/∂y on 2 MB pages", () => TableGradientPass.WriteAll(new TableGradientPass.RowPass(hits, tp, hugeGrad, Width, wp), RowCount, gt, accumulate: false)),
            ("row pass, bf16 ∂L/∂y on 2 MB pages (128-column tiles, prefetch on)", () => Narrow128(() => Prefetched(() =>
                TableGradientPass.WriteAll(new TableGradientPass.RowPass(hits, tp, gp, Width, wp, hugeBf16), RowCount, gt, accumulate: false)))),
            ("row pass, bf16 ∂L/∂y, 256-column tiles, prefetch on (pass alone)", () => Prefetched(() => Bf16Pass(hits))),
            ("  the same, prefetch off: the library's bf16 path (pass alone)", () => Bf16Pass(hits)),
            ("  the same, incl. its narrow", () => { Narrow(); Bf16Pass(hits); }),
            ("  the same, ∂L/∂y folded into 256 tokens", () => Bf16Pass(folded)),
        ];
    }
}
