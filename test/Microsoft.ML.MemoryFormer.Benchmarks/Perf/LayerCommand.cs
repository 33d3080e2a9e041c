using System.ComponentModel;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary><c>perf layer</c>: Memory Layer vs Linear, forward and forward + backward, for a sweep of d and N.</summary>
internal sealed class LayerCommand : Command<LayerCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--engine")]
        [Description("bdn (BenchmarkDotNet, short in-process job) or stopwatch (looped calls timed interleaved, median of the rounds). Default bdn.")]
        [DefaultValue("bdn")]
        public string Engine { get; init; } = "bdn";

        [CommandOption("--widths")]
        [Description("Comma-separated d values. Default 256,512,1024,2048.")]
        [DefaultValue("256,512,1024,2048")]
        public string Widths { get; init; } = "256,512,1024,2048";

        [CommandOption("--tokens")]
        [Description("Comma-separated N values. Default 1,64,4096.")]
        [DefaultValue("1,64,4096")]
        public string Tokens { get; init; } = "1,64,4096";

        [CommandOption("--training-lease")]
        [Description("Run every call inside a training's lease (KernelBuffers.Training), as a training step runs: the kernels' outputs on reused blocks and glibc's training heap settings for torch's own allocations (Linear's too). Default off: the benchmark as before 2026-12-07.")]
        public bool TrainingLease { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        var widths = settings.Widths.Split(',').Select(int.Parse).ToArray();
        var tokens = settings.Tokens.Split(',').Select(int.Parse).ToArray();
        using var lease = settings.TrainingLease ? Layers.Kernels.KernelBuffers.Training() : null;
        var results = settings.Engine == "stopwatch" ? RunStopwatch(widths, tokens, settings.Quick) : RunBdn(widths, tokens, settings);
        string machine = settings.Engine == "stopwatch" ? MachineFigures.Measure(settings) : "";
        var table = new PerfTable("layer", "Memory Layer (d→d, τ=8) vs nn.Linear(d, d): ms per call, Linear ÷ MF (> 1: MF faster)",
            "d", "N", "Linear fwd", "MF fwd", "fwd ratio", "Linear fwd+bwd", "MF fwd+bwd", "fwd+bwd ratio", "MF fwd+bwd, blocked on", "default ÷ blocked (> 1: blocked faster)",
            "MF fwd+bwd, prefetch off", "prefetch off ÷ default (> 1: prefetch faster)",
            "MF fwd, tiled off", "MF fwd+bwd, tiled off", "fwd: off ÷ default", "fwd+bwd: off ÷ default",
            "MF fwd+bwd, bf16 ∂L/∂y flipped", "flipped ÷ default (> 1: the default faster)",
            "MF fwd+bwd, bf16 fwd tables", "default ÷ bf16 fwd (> 1: bf16 fwd faster)", "MF fwd+bwd, both bf16", "default ÷ both (> 1: both faster)",
            "fwd+bwd ratio, both bf16 (Linear ÷ MF)", "MF fwd+bwd, pooled tile-major copy reused (no training step)", "fwd+bwd ratio, pooled copy reused (Linear ÷ MF)");
        foreach (var ((d, n), r) in results)
            table.AddRow(d, n, r[0], r[1], r.Length > 4 ? r[4] : r[0] / r[1], r[2], r[3], r.Length > 4 ? r[5] : r[2] / r[3],
                r.Length > 6 ? r[6] : double.NaN, r.Length > 7 ? r[7] : double.NaN, r.Length > 8 ? r[8] : double.NaN, r.Length > 9 ? r[9] : double.NaN,
                r.Length > 10 ? r[10] : double.NaN, r.Length > 11 ? r[11] : double.NaN, r.Length > 12 ? r[12] : double.NaN, r.Length > 13 ? r[13] : double.NaN,
                r.Length > 14 ? r[14] : double.NaN, r.Length > 15 ? r[15] : double.NaN,
                r.Length > 16 ? r[16] : double.NaN, r.Length > 17 ? r[17] : double.NaN, r.Length > 18 ? r[18] : double.NaN, r.Length > 19 ? r[19] : double.NaN,
                r.Length > 20 ? r[20] : double.NaN, r.Length > 22 ? r[21] : double.NaN, r.Length > 22 ? r[22] : double.NaN);
        table.AddNote($"engine {settings.Engine}{(settings.Engine == "stopwatch" ? " (the calls interleaved, 9 rounds; ratio = median of the rounds' ratios)" : "")}; MF includes hashing and bias; fwd under no_grad; fwd+bwd = sum(y).backward() with grads for x and all parameters, set to none before each call, and the MF table marked written before each call, as an optimizer step does before every training forward, so the forward runs as in training: " +
            (Runtime.KernelSettings.Current.TiledStridedCopy ? "each thread copies its tiles' columns straight from the row-major table (KernelSettings.TiledStridedCopy, on for Intel), no tile-major copy of the table; " : "the table copied into the pooled tile-major buffer first (KernelSettings.TiledStridedCopy off here); ") +
            "fwd alone, under no_grad, reads the tile-major copy already in the pooled buffer, as inference over an unchanged table does; 'pooled tile-major copy reused' = fwd+bwd without the mark, so its forward reads that copy too (the tile-major plan), a twelfth interleaved call: no training step gets it; " +
            (settings.TrainingLease ? "every call inside a training's lease (--training-lease: kernel outputs on reused blocks, the training heap); " : "no training lease (kernel outputs from torch's allocator, glibc's default heap: about 1,000 more page faults a call than a training step's layer call); ") +
            "MF columns = the library's default backward (the row pass); 'blocked on' = KernelSettings.BlockedTableGradient on (the table gradient written block by block, " +
            "Layers/Kernels/BlockedTableGradient.cs), a fifth interleaved call (stopwatch only); 'prefetch off' = KernelSettings.PrefetchHitRows off " +
            "(the row pass without prefetching the next row's ∂L/∂y rows), a sixth; 'tiled off' = KernelSettings.TiledForward off " +
            "(the token-major forward kernel; default on: Layers/Kernels/TiledGather.cs), a seventh and eighth interleaved call (stopwatch only); " +
            $"'bf16 ∂L/∂y flipped' = KernelSettings.Bf16GradientRows {(!Runtime.KernelSettings.Current.Bf16GradientRows ? "on" : "off")} (default {(Runtime.KernelSettings.Current.Bf16GradientRows ? "on" : "off")}: the row pass reads a bf16 copy of ∂L/∂y), a ninth; " +
            "'bf16 fwd tables' = KernelSettings.Bf16ForwardTables on (the forward reads a bf16 copy of the table), a tenth; 'both bf16' = it and Bf16GradientRows on, an eleventh");
        if (machine.Length > 0)
            table.AddNote(machine);
        table.Publish(settings.Output);
        return 0;
    }

    /// <summary>
    /// (d, N) → [Linear fwd, MF fwd, Linear fwd+bwd, MF fwd+bwd] in ms, and the two ratios Linear ÷ MF. The four
    /// calls are timed interleaved, one (looped) call each per round, and a ratio is the median of the rounds' ratios:
    /// this machine's speed drifts by up to 30% within a minute, as in <c>perf train</c>.
    /// </summary>
    private static SortedDictionary<(int, int), double[]> RunStopwatch(int[] widths, int[] tokens, bool quick)
    {
        var results = new SortedDictionary<(int, int), double[]>();
        foreach (int d in widths)
            foreach (int n in tokens)
            {
                using var layer = new LayerCase(d, n);
                var looped = new[] { layer.LinearForward, layer.MemoryForward, layer.LinearForwardBackward, layer.MemoryForwardBackward, layer.MemoryForwardBackwardBlocked,
                        layer.MemoryForwardBackwardNoPrefetch, layer.MemoryForwardUntiled, layer.MemoryForwardBackwardUntiled,
                        layer.MemoryForwardBackwardBf16Flipped, layer.MemoryForwardBackwardBf16Forward, layer.MemoryForwardBackwardMixed,
                        layer.MemoryForwardBackwardReused }
                    .Select(b => Timing.Looped(b, 2, quick ? 30 : 100)).ToArray();
                var rounds = Timing.InterleaveRounds(looped.Select(l => l.Body).ToArray(), quick ? 3 : 9);
                var ms = rounds.Select((t, i) => t.Select(v => v / looped[i].Loops).ToArray()).ToArray();
                double Ratio(int linear, int memory) => Timing.Median(ms[linear].Zip(ms[memory], (l, m) => l / m));
                var medians = ms.Select(Timing.Median).ToArray();
                results[(d, n)] = [.. medians[..4], Ratio(0, 1), Ratio(2, 3), medians[4], Ratio(3, 4), medians[5], Ratio(5, 3),
                    medians[6], medians[7], Ratio(6, 1), Ratio(7, 3), medians[8], Ratio(8, 3),
                    medians[9], Ratio(3, 9), medians[10], Ratio(3, 10), Ratio(2, 10), medians[11], Ratio(2, 11)];
            }
        return results;
    }

    private static SortedDictionary<(int, int), double[]> RunBdn(int[] widths, int[] tokens, Settings settings)
    {
        LayerBenchmarks.Widths = widths;
        LayerBenchmarks.TokenCounts = tokens;
        LayerBenchmarks.Threads = settings.Threads;
        var job = Job.Dry.WithToolchain(InProcessEmitToolchain.Instance)
            .WithLaunchCount(1).WithWarmupCount(2).WithIterationCount(settings.Quick ? 3 : 7)
            .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(settings.Quick ? 50 : 150))
            .WithStrategy(BenchmarkDotNet.Engines.RunStrategy.Throughput).WithId("short");
        var config = ManualConfig.CreateEmpty().AddJob(job)
            .AddColumnProvider(BenchmarkDotNet.Columns.DefaultColumnProviders.Instance)
            .AddLogger(BenchmarkDotNet.Loggers.ConsoleLogger.Default)
            .WithArtifactsPath(Path.Combine(settings.Output, "bdn"))
            .WithOptions(ConfigOptions.DisableOptimizationsValidator | ConfigOptions.JoinSummary);
        var summary = BenchmarkRunner.Run<LayerBenchmarks>(config);
        string[] order = [nameof(LayerBenchmarks.LinearForward), nameof(LayerBenchmarks.MemoryForward),
            nameof(LayerBenchmarks.LinearForwardBackward), nameof(LayerBenchmarks.MemoryForwardBackward)];
        var results = new SortedDictionary<(int, int), double[]>();
        foreach (var report in summary.Reports)
        {
            var p = report.BenchmarkCase.Parameters;
            var key = ((int)p["D"], (int)p["N"]);
            if (!results.TryGetValue(key, out var row)) results[key] = row = [double.NaN, double.NaN, double.NaN, double.NaN];
            int i = Array.IndexOf(order, report.BenchmarkCase.Descriptor.WorkloadMethod.Name);
            row[i] = (report.ResultStatistics?.Median ?? double.NaN) / 1e6;
        }
        return results;
    }
}
