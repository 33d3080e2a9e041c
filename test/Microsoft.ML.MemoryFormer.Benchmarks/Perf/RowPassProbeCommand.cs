using System.ComponentModel;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf probe-rowpass</c> (issue 16, Memory Layer fourth round): the backward's row pass alone (table and weight
/// gradients, hit sort excluded) at h = 512, τ = 8 (K = 64), interleaved against the same pass with every hit's ∂L/∂y
/// row folded into the first 256 tokens (a 512 KB ∂L/∂y that stays in L2): how much of the pass waits for ∂L/∂y.
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
        if (Environment.GetEnvironmentVariable("PROBE_ONLY") is { } only)
            variants = only.Split(',').Select(int.Parse).Select(i => variants[i]).ToArray();
        var times = Timing.InterleaveRounds(variants.Select(v => v.Body).ToArray(), rounds);
        var result = new PerfTable("probe-rowpass", $"Row pass alone (table + weight gradients), h={Width}, K={Chunks}, N={n}: ms, median of {rounds} interleaved rounds",
            "variant", "ms", "first ÷ this (> 1: this faster)");
        for (int v = 0; v < variants.Length; v++)
            result.AddRow(variants[v].Name, Timing.Median(times[v]), Timing.Median(times[0].Zip(times[v], (a, b) => a / b)));
        result.AddNote("rows: uniform random bucket per chunk; hit sort outside the timing; the table gradient written with the library's stores");
        result.AddNote(machine);
        result.Publish(settings.Output);
        return 0;
    }

    private static Tensor? weightGradient, tableGradient;

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
        return
        [
            ("row pass, whole rows", () => Pass(hits)),
            ("row pass, 32-column slices (SlicedRowPass)", Sliced),
            ("  the same, blocks of 1024 rows", () => WithBlock(1024, Sliced)),
            ("  the same, blocks of 8192 rows", () => WithBlock(8192, Sliced)),
            ("  the same, blocks of 256 rows", () => WithBlock(256, Sliced)),
            ("  the same, no weight gradient", () => SlicedRowPass.WriteAll(new TableGradientPass.RowPass(hits, tp, gp, Width, 0), n, RowCount, TensorMemory.Floats(gt))),
            ("row pass, prefetch off", () => KernelSettings.Current.With(k => k.PrefetchHitRows = false, () => Pass(hits))),
            ("row pass, ∂L/∂y folded into 256 tokens (512 KB, L2)", () => Pass(folded)),
            ("the same, prefetch off", () => KernelSettings.Current.With(k => k.PrefetchHitRows = false, () => Pass(folded))),
        ];
    }
}
