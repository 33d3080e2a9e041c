using System.ComponentModel;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf probe-tiled</c> (issue 16): the fp32 forward gather of each Memory Layer call shape of <c>perf train</c> (d = 256 and
/// 512) and of <c>perf layer</c> (d = 512, N = 4096) through <see cref="FusedMemoryGather.ApplyMany"/> under no_grad, bias on:
/// as dispatched, the token-major kernel with its L2 prefetch forced, the tiled kernel forced, and the tiled kernel
/// alone and in pieces (its copies without the token walks, the walks without the staging copy or with every row in L1, other
/// cuts, the tile-major copy, the 8-token interleave; <see cref="TiledGather.ProbeSkip"/>), interleaved, wall and CPU time, minor
/// faults, every dispatched output checked byte for byte against the default's.
/// </summary>
internal sealed unsafe class TiledProbeCommand : Command<TiledProbeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--calls")]
        [Description("Comma-separated call shapes: layer (d=512, N=4096), qkv512, ml1-512, ml2-512, qkv256, ml1-256, ml2-256. Default layer,qkv512,ml1-512.")]
        [DefaultValue("layer,qkv512,ml1-512")]
        public string Calls { get; init; } = "layer,qkv512,ml1-512";

        [CommandOption("--rounds")]
        [Description("Interleaved rounds (median of per-round ratios). Default 9; --quick uses 3.")]
        [DefaultValue(9)]
        public int Rounds { get; init; } = 9;

        [CommandOption("--variants")]
        [Description("Comma-separated indices of the variants to time (0 = as dispatched, the ratios' baseline, always kept). Default all.")]
        public string? Variants { get; init; }
    }

    /// <summary>One call shape: K chunks of 2^τ rows, N tokens, one table per width.</summary>
    private sealed record Shape(string Name, int K, int Tau, int N, int[] Widths);

    private static readonly Dictionary<string, Shape> Shapes = new()
    {
        ["layer"] = new("layer d=512, N=4096", 64, 8, 4096, [512]),
        ["layer2048"] = new("layer d=512, N=2048", 64, 8, 2048, [512]),
        ["layer1024"] = new("layer d=512, N=1024", 64, 8, 1024, [512]),
        ["layer512"] = new("layer d=512, N=512", 64, 8, 512, [512]),
        ["qkv512-1024"] = new("Q/K/V d=512, N=1024", 64, 8, 1024, [512, 512, 512]),
        ["qkv512"] = new("Q/K/V d=512", 64, 8, 2048, [512, 512, 512]),
        ["ml1-512"] = new("ML₁ d=512", 64, 8, 2048, [640]),
        ["ml2-512"] = new("ML₂ d=512", 64, 10, 2048, [512]),
        ["qkv256"] = new("Q/K/V d=256", 32, 8, 2048, [256, 256, 256]),
        ["ml1-256"] = new("ML₁ d=256", 32, 8, 2048, [320]),
        ["ml2-256"] = new("ML₂ d=256", 32, 10, 2048, [256]),
    };

    private sealed record Variant(string Name, Action Body, bool Checked = true);

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string machine = MachineFigures.Measure(settings);
        int rounds = settings.Quick ? 3 : settings.Rounds;
        var result = new PerfTable("probe-tiled", "Forward gather per call shape: as dispatched vs the token-major kernel (L2 prefetch) vs the tiled kernel, alone and in pieces (ms, median of interleaved rounds)",
            "call", "variant", "ms", "dispatched ÷ this (> 1: this faster)", "CPU ms", "dispatched ÷ this, CPU", "output", "minor faults a call");
        using var training = KernelBuffers.Training();                         // only the variant that turns ReuseKernelBuffers on uses it
        foreach (var name in settings.Calls.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            Probe(result, Shapes[name], rounds, settings.Variants);
        result.AddNote("through FusedMemoryGather.ApplyMany under no_grad (int64 → int32 row copy and output buffers included), bias on; rows: a uniform random bucket per chunk, weights U(0,1)");
        result.AddNote("CPU ms = the process's processor time during the call (both threads; it leaves out time spent waiting for a core on a loaded machine)");
        result.AddNote(machine);
        result.Publish(settings.Output);
        return 0;
    }

    private static void Probe(PerfTable result, Shape shape, int rounds, string? only)
    {
        random.manual_seed(11);
        int rowCount = shape.K << shape.Tau, n = shape.N, k = shape.K;
        var tables = shape.Widths.Select(h => randn(rowCount, h).mul_(0.02)).ToArray();
        var biases = shape.Widths.Select(h => randn(h)).ToArray();
        var generator = new Random(11);
        var rowValues = new long[n * k];
        for (int i = 0; i < rowValues.Length; i++)
            rowValues[i] = ((long)(i % k) << shape.Tau) + generator.Next(1 << shape.Tau);
        using var rows = tensor(rowValues).view(n, k);
        using var weights = rand(n, k);
        byte[][]? last = null;
        bool keep = false;                                                      // true while outputs are checked: their bytes kept in `last`
        // Kernel outputs on torch's allocator (fresh pages) as outside a training, unless a variant turns ReuseKernelBuffers back on;
        // in a dispose scope, as perf layer's calls run.
        void Gather(Action<KernelSettings> change) => KernelSettings.Current.With(c => { c.ReuseKernelBuffers = false; change(c); }, () =>
        {
            using var scope = NewDisposeScope();
            using var g = no_grad();
            var outputs = FusedMemoryGather.ApplyMany(rows, weights, tables, null, biases);
            if (keep)
                last = outputs.Select(o => o.bytes.ToArray()).ToArray();
        });
        var rows32 = rowValues.Select(v => (int)v).ToArray();
        int blocks = n / 8;
        var rowsT = new int[Math.Max(1, blocks * k * 8)];
        var weightsT = new float[rowsT.Length];
        using var copy = empty((long)rowCount * shape.Widths.Max() + 64);
        nint copyAt = ((nint)TensorMemory.Floats(copy) + 63) & ~(nint)63;
        var outs = shape.Widths.Select(h => empty(n, h)).ToArray();
        var confined = rowValues.Select(v => (int)(v & ~((1L << shape.Tau) - 8))).ToArray();   // 8 buckets of each chunk: the rows read stay in L1
        void Kernel(TiledGather.Plan plan, int[]? r = null) => TiledGather.Forward(r ?? rows32, true, n, k, rowCount, (nint)TensorMemory.Floats(weights),
            tables.Select(t => (nint)TensorMemory.Floats(t)).ToArray(), shape.Widths, biases.Select(b => (nint)TensorMemory.Floats(b)).ToArray(),
            outs.Select(o => (nint)TensorMemory.Floats(o)).ToArray(), plan);
        static void Skipping(int skip, Action body)
        {
            TiledGather.ProbeSkip = skip;
            try
            {
                body();
            }
            finally
            {
                TiledGather.ProbeSkip = 0;
            }
        }
        var variants = new List<Variant>
        {
            new("as dispatched", () => Gather(_ => { })),
            new("token-major, L2 prefetch (forced)", () => Gather(c => c.TiledForwardMinTableBytes = c.TiledForwardAlignedMinTableBytes = long.MaxValue)),
            new("tiled (forced where TiledGather.Pays)", () => Gather(c => c.TiledForwardMinTableBytes = 0)),
            new("as dispatched, outputs on reused blocks (KernelBuffers, as in a training)", () => Gather(c => c.ReuseKernelBuffers = true)),
            new("kernel alone: tiled, the default plan", () => Kernel(TiledGather.Plan.Default), false),
            new("kernel alone: the default plan, rows confined to 8 buckets a chunk (read from L1)", () => Kernel(TiledGather.Plan.Default, confined), false),
            new("kernel alone: the default plan, copies only (no token walk)", () => Skipping(1, () => Kernel(TiledGather.Plan.Default)), false),
            new("kernel alone: the default plan, no staging copy (walks over a stale scratch)", () => Skipping(2, () => Kernel(TiledGather.Plan.Default)), false),
            new("kernel alone: the default plan, groups of 16 chunks", () => Kernel(TiledGather.Plan.Default with { GroupChunks = 16 }), false),
            new("kernel alone: the default plan, groups of 8 chunks", () => Kernel(TiledGather.Plan.Default with { GroupChunks = 8 }), false),
            new("kernel alone: the default plan, 4 tokens a step", () => Kernel(TiledGather.Plan.Default with { Tokens = 4 }), false),
            new("kernel alone: strided per-thread copy, no tile-major copy", () => Kernel(new TiledGather.Plan(0, 8, TileMajor: false)), false),
            new("  piece: tile-major copy of every table (streaming)", () =>
            {
                for (int t = 0; t < tables.Length; t++)
                    TiledGather.ToTileMajor(TensorMemory.Floats(tables[t]), shape.Widths[t], rowCount, (float*)copyAt, streaming: true);
            }, false),
            new("  piece: 8-token interleave of rows and weights", () =>
            {
                fixed (int* r = rows32, rt = rowsT)
                fixed (float* wt = weightsT)
                    TiledGather.Interleave(r, TensorMemory.Floats(weights), blocks, k, rt, wt);
            }, false),
            new("kernel alone: the default plan, groups of 32 chunks (512 KB at 2^τ = 256: half a Zen 4 core's 1 MB L2)", () => Kernel(TiledGather.Plan.Default with { GroupChunks = 32 }), false),
            new("kernel alone: the default plan, groups of 64 chunks (1 MB at 2^τ = 256: half an Emerald Rapids core's 2 MB L2)", () => Kernel(TiledGather.Plan.Default with { GroupChunks = 64 }), false),
            new("tiled (forced where TiledGather.Pays), groups of 512 KB (ScratchBytes as on a 1 MB L2)", () => Gather(c => { c.TiledForwardMinTableBytes = 0; c.TiledGroupBytes = 512 << 10; })),
            new("tiled (forced where TiledGather.Pays), groups of 1 MB (ScratchBytes as on a 2 MB L2)", () => Gather(c => { c.TiledForwardMinTableBytes = 0; c.TiledGroupBytes = 1 << 20; })),
            new("kernel alone: strided per-thread copy, two tiles a walk (Plan.Strided with PairTiles: the training forward on Intel)",
                () => Kernel(TiledGather.Plan.Strided with { PairTiles = true }), false),
            new("kernel alone: strided pairs, groups of 16 chunks", () => Kernel(TiledGather.Plan.Strided with { PairTiles = true, GroupChunks = 16 }), false),
            new("kernel alone: strided pairs, groups of 8 chunks", () => Kernel(TiledGather.Plan.Strided with { PairTiles = true, GroupChunks = 8 }), false),
            new("kernel alone: strided pairs, groups of 64 chunks", () => Kernel(TiledGather.Plan.Strided with { PairTiles = true, GroupChunks = 64 }), false),
            new("kernel alone: strided pairs, copies only (no token walk)", () => Skipping(1, () => Kernel(TiledGather.Plan.Strided with { PairTiles = true })), false),
            new("kernel alone: strided pairs, rows confined to 8 buckets a chunk (read from L1)", () => Kernel(TiledGather.Plan.Strided with { PairTiles = true }, confined), false),
        };
        var reference = Run(variants[0]);
        var outputsMatch = variants.Select(v => !v.Checked ? "—" : Same(reference, Run(v)) ? "same bytes" : "DIFFERS").ToArray();
        var picked = only is null ? Enumerable.Range(0, variants.Count).ToArray()
            : new[] { 0 }.Concat(only.Split(',').Select(int.Parse).Where(i => i != 0)).ToArray();
        var (wall, cpu) = TimeWithCpu(picked.Select(i => variants[i].Body).ToArray(), rounds);
        string Ratio(double[][] times, int v)
        {
            var ratios = times[0].Zip(times[v], (a, b) => a / b).Order().ToArray();
            return FormattableString.Invariant($"{Timing.Median(ratios):F2} ({ratios[0]:F2}–{ratios[^1]:F2})");
        }
        var faults = picked.Select(i =>
        {
            long before = PageFaults.Minor();
            for (int call = 0; call < 3; call++)
                variants[i].Body();
            return (PageFaults.Minor() - before) / 3.0;
        }).ToArray();
        string label = $"{shape.Name}: K={k}, τ={shape.Tau}, {shape.Widths.Length}×[{rowCount}, {shape.Widths[0]}], {(double)n * k / rowCount:F0} hits a row";
        for (int p = 0; p < picked.Length; p++)
            result.AddRow(label, variants[picked[p]].Name, Timing.Median(wall[p]), p == 0 ? "—" : Ratio(wall, p), Timing.Median(cpu[p]),
                p == 0 ? "—" : Ratio(cpu, p), outputsMatch[picked[p]], faults[p]);
        foreach (var t in tables.Concat(biases).Concat(outs))
            t.Dispose();

        byte[][] Run(Variant v)
        {
            keep = true;
            v.Body();
            keep = false;
            return last!;
        }
    }

    private static bool Same(byte[][] a, byte[][] b) => a.Length == b.Length && a.Zip(b).All(p => p.First.AsSpan().SequenceEqual(p.Second));

    /// <summary>Wall and CPU milliseconds per body and round, the order rotated each round.</summary>
    private static (double[][] Wall, double[][] Cpu) TimeWithCpu(Action[] bodies, int rounds)
    {
        var cpu = bodies.Select(_ => new List<double>()).ToArray();
        var process = System.Diagnostics.Process.GetCurrentProcess();
        var timed = bodies.Select((b, i) => (Action)(() =>
        {
            process.Refresh();
            var before = process.TotalProcessorTime;
            b();
            process.Refresh();
            cpu[i].Add((process.TotalProcessorTime - before).TotalMilliseconds);
        })).ToArray();
        var wall = Timing.InterleaveRounds(timed, rounds);
        return (wall, cpu.Select(c => c.Skip(1).ToArray()).ToArray());     // InterleaveRounds' warm-up round first
    }
}
