using System.ComponentModel;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf layer-budget</c>: exactly <c>perf layer</c>'s Memory Layer fwd + bwd (d × N, τ = 8, table marked written so the forward
/// copies it tile-major), split into its phases, each with the bytes it must move and its GB/s, timed interleaved; and the rates
/// this machine gives on two threads for the access patterns those phases use (<see cref="AccessRates"/>), from which a floor.
/// </summary>
internal sealed class LayerBudgetCommand : Command<LayerBudgetCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("d (= h). Default 512.")]
        [DefaultValue(512)]
        public int Width { get; init; } = 512;

        [CommandOption("--tokens")]
        [Description("N. Default 4096.")]
        [DefaultValue(4096)]
        public int Tokens { get; init; } = 4096;

        [CommandOption("--rounds")]
        [Description("Interleaved rounds after a warm-up (median). Default 11; --quick: 3.")]
        [DefaultValue(11)]
        public int Rounds { get; init; } = 11;

        [CommandOption("--skip-rates")]
        [Description("Only the phase table (no access-pattern rates).")]
        public bool SkipRates { get; init; }

        [CommandOption("--rates-only")]
        [Description("Only the access-pattern rates.")]
        public bool RatesOnly { get; init; }

        [CommandOption("--flip")]
        [Description("Only perf layer's MF fwd+bwd and fwd with this KernelSettings switch (a bool property, e.g. TiledStridedCopy) as it is and flipped, beside Linear's, interleaved: medians, per-round ratios, CPU time.")]
        public string? Flip { get; init; }

        [CommandOption("--with")]
        [Description("With --flip: comma-separated bool KernelSettings switches turned on in every body (e.g. Bf16ForwardTables,Bf16GradientRows).")]
        public string? With { get; init; }

        [CommandOption("--loop-seconds")]
        [Description("Only loop perf layer's MF fwd+bwd for this many seconds (for perf record) and print ms per call. Default 0: off.")]
        [DefaultValue(0)]
        public int LoopSeconds { get; init; }

        [CommandOption("--lease")]
        [Description("With --loop-seconds, --flip or the phase table: hold a training's lease (KernelBuffers.Training: pooled kernel outputs, the training heap) as a training step runs.")]
        public bool Lease { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        using var trainingLease = settings.Lease && settings.LoopSeconds == 0 ? KernelBuffers.Training() : null;
        int rounds = settings.Quick ? 3 : settings.Rounds;
        if (settings.LoopSeconds > 0)
        {
            using var lease = settings.Lease ? KernelBuffers.Training() : null;
            using var loopCase = new LayerCase(settings.Width, settings.Tokens);
            loopCase.MemoryForwardBackward();
            long faults = PageFaults.Minor();
            var process = Process.GetCurrentProcess();
            var cpuBefore = process.TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            int calls = 0;
            while (watch.Elapsed.TotalSeconds < settings.LoopSeconds)
            {
                loopCase.MemoryForwardBackward();
                calls++;
            }
            process.Refresh();
            Console.WriteLine($"perf layer MF fwd+bwd d={settings.Width} N={settings.Tokens}: {watch.Elapsed.TotalMilliseconds / calls:F2} ms a call over {calls} calls, " +
                $"CPU {(process.TotalProcessorTime - cpuBefore).TotalMilliseconds / calls:F2} ms a call (both threads), " +
                $"{(double)(PageFaults.Minor() - faults) / calls:F0} minor page faults a call{(settings.Lease ? ", inside a training's lease" : "")}");
            return 0;
        }
        if (settings.Flip is { } flip)
        {
            var flipped = LayerFlip.Measure(settings.Width, settings.Tokens, flip, rounds,
                settings.With?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) ?? []);
            if (settings.Lease)
                flipped.AddNote("inside a training's lease (KernelBuffers.Training: pooled kernel outputs, the training heap)");
            flipped.AddNote(MachineFigures.Measure(settings));
            flipped.Publish(settings.Output);
            return 0;
        }
        if (!settings.RatesOnly)
        {
            using var budget = new LayerBudget(settings.Width, settings.Tokens);
            var table = new PerfTable($"layer-budget-d{settings.Width}-n{settings.Tokens}",
                $"perf layer's Memory Layer fwd+bwd (d = h = {settings.Width}, τ = 8, N = {settings.Tokens}) by phase: ms (median of {rounds} interleaved rounds), bytes it must move, GB/s",
                "phase", "ms", "MB moved", "GB/s", "where the bytes live");
            foreach (var (name, ms, mb, where) in budget.Measure(rounds))
                table.AddRow(name, ms, double.IsNaN(mb) ? "—" : mb.ToString("F1", System.Globalization.CultureInfo.InvariantCulture),
                    double.IsNaN(mb) ? "—" : (mb / ms).ToString("F1", System.Globalization.CultureInfo.InvariantCulture), where);
            table.AddNote(budget.Describe());
            table.AddNote($"{Timing.LoadAverage():F1} load average at the end; torch threads {settings.Threads}" +
                (settings.Lease ? "; inside a training's lease (KernelBuffers.Training: pooled kernel outputs, the training heap)" : "; no training lease (kernel outputs from torch's allocator)"));
            table.AddNote(MachineFigures.Measure(settings));
            table.Publish(settings.Output);
        }
        if (!settings.SkipRates && !settings.RatesOnly || settings.RatesOnly)
        {
            var rates = new PerfTable("layer-budget-rates", $"Access-pattern rates on {KernelParallel.Workers} threads (median of {rounds} interleaved rounds)",
                "pattern", "ms", "MB moved", "GB/s", "ns a line or row per thread");
            foreach (var (name, ms, mb, unitNs) in AccessRates.Measure(rounds))
                rates.AddRow(name, ms, mb, mb / ms, unitNs);
            rates.AddNote($"{Timing.LoadAverage():F1} load average at the end");
            rates.AddNote(MachineFigures.Measure(settings));
            rates.Publish(settings.Output);
        }
        return 0;
    }
}
