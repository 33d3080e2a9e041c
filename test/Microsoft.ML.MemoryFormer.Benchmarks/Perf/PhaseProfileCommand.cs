using System.ComponentModel;
using System.Globalization;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf profile-phases</c>: a Memory Layer call of <c>perf train</c>'s step (the shared Q/K/V, ML₁, ML₂ of block 0 of
/// the trained model, N = B·T tokens, this step's table update armed) split into its kernels, each timed alone and
/// interleaved with the whole call: hash forward and backward, the gather's forward (and its token-major and tiled
/// kernels forced), the int64 → int32 row copy, the hit sort, the row pass with the fused AdamW update, the row pass
/// writing a gradient and the AdamW sweep alone, the bias sums; "everything else" is the whole call minus the phases
/// the call runs. A second table gives bytes and GB/s per phase, to compare d = 256 with d = 512 (issue 16).
/// </summary>
internal sealed class PhaseProfileCommand : Command<PhaseProfileCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("perf train's shape: 256 (L=4 ctx128×16) or 512 (L=6 ctx256×8). Default 256.")]
        [DefaultValue(256)]
        public int Width { get; init; } = 256;

        [CommandOption("--rounds")]
        [Description("Interleaved rounds after one warm-up round (median). Default 9; --quick: 3.")]
        public int? Rounds { get; init; }

        [CommandOption("--calls")]
        [Description("Which calls: qkv, ml1, ml2 (comma-separated). Default all three.")]
        [DefaultValue("qkv,ml1,ml2")]
        public string Calls { get; init; } = "qkv,ml1,ml2";

        [CommandOption("--ratios")]
        [Description("Only the before ÷ after rows whose name contains one of these comma-separated substrings (e.g. PrefetchUpdateRows). Default all.")]
        public string? Ratios { get; init; }

        [CommandOption("--cpu-time")]
        [Description("The before ÷ after rows compare the process's CPU time instead of wall time (steadier on a loaded machine).")]
        public bool CpuTime { get; init; }

        [CommandOption("--cold-halves")]
        [Description("Also time the fused row pass + AdamW and its two halves one call each right after a cache eviction (three times the L3).")]
        public bool ColdHalves { get; init; }

        [CommandOption("--skip-phases")]
        [Description("Time only the before ÷ after rows (no phase and rate tables).")]
        public bool SkipPhases { get; init; }

        [CommandOption("--cold")]
        [Description("Also time every phase with cold caches (three times the L3 written before each call), as in a whole step.")]
        public bool Cold { get; init; }

        [CommandOption("--no-ratios")]
        [Description("Skip the before ÷ after table (the longest part of the run).")]
        public bool NoRatios { get; init; }

        [CommandOption("--loop-whole")]
        [Description("Only loop the whole call of each chosen call for this many seconds and print ms per call (for perf record). Default 0: off.")]
        [DefaultValue(0.0)]
        public double LoopWhole { get; init; }

        public override Spectre.Console.ValidationResult Validate() => TrainCommand.ValidateWidth(Width);
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        LayerPhases.CpuTime = settings.CpuTime;
        var s = TrainCommand.ShapeOf(settings.Width);
        string machine = MachineFigures.Measure(settings);
        var (model, task) = TrainCommand.ByteModel(s, TransformerKind.MemoryFormer);
        using var optimizer = new ModelOptimizer(model, new TrainingOptions { MaxSteps = 1000, WarmupSteps = 10 });
        model.train();
        for (int step = 0; step < 2; step++)
            TrainStep(optimizer, task, step);                                   // moments allocated, tables touched
        var block = model.Backbone.Blocks[0];
        var qkv = (MemoryQkv)block.Attention.Qkv;
        var memory = (MemoryBlock)block.Ffn;
        int n = s.Context * s.Batch, rounds = settings.Rounds ?? (settings.Quick ? 3 : 9);
        var wanted = settings.Calls.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var calls = new List<(string Name, LayerPhases Phases)>();
        if (wanted.Contains("qkv"))
            calls.Add(($"Q/K/V {s.Width} → 3 × {s.Width}", new LayerPhases(qkv.Value, [qkv.Query, qkv.Key, qkv.Value], n, optimizer)));
        if (wanted.Contains("ml1"))
            calls.Add(($"ML₁ {s.Width} → {memory.Expand.OutputWidth}", new LayerPhases(memory.Expand, [memory.Expand], n, optimizer)));
        if (wanted.Contains("ml2"))
            calls.Add(($"ML₂ {memory.Project.InputWidth} → {s.Width}", new LayerPhases(memory.Project, [memory.Project], n, optimizer)));
        if (settings.LoopWhole > 0)
        {
            foreach (var c in calls)
            {
                var split = c.Phases.SplitWhole(30);
                Console.WriteLine($"{c.Name}: split hash {split[0]:F3} gather {split[1]:F3} backward {split[2]:F3} ms");
                Console.WriteLine($"{c.Name}: whole call {c.Phases.LoopWhole(settings.LoopWhole):F3} ms (median of the seconds' calls)");
            }
            foreach (var c in calls)
                c.Phases.Dispose();
            model.Dispose();
            return 0;
        }
        var times = new PerfTable($"profile-phases-d{s.Width}", $"Memory Layer calls of one d={s.Width} training step, phase by phase " +
            $"(N={n}; ms per call, median of {rounds} interleaved rounds)", ["phase", .. calls.Select(c => c.Name)]);
        var rates = new PerfTable($"profile-phases-d{s.Width}-rates", $"The same phases as bytes moved and GB/s (d={s.Width}, N={n})",
            ["phase", .. calls.SelectMany(c => new[] { c.Name + " MB", c.Name + " GB/s" })]);
        var results = settings.SkipPhases ? [] : calls.Select(c => c.Phases.Measure(rounds)).ToArray();
        foreach (var name in results.Length == 0 ? [] : LayerPhases.Names)
            times.AddRow([name, .. results.Select(r => (object)r.Ms[name])]);
        foreach (var name in results.Length == 0 ? [] : LayerPhases.RateNames)
            rates.AddRow([name, .. results.SelectMany(r => new object[] { r.Megabytes[name], r.Megabytes[name] / r.Ms[name] })]);
        if (settings.Cold)
        {
            var cold = calls.Select(c => c.Phases.MeasureCold(rounds)).ToArray();
            var coldTable = new PerfTable($"profile-phases-d{s.Width}-cold", $"The same phases with cold caches (d={s.Width}, N={n}; " +
                $"ms per single call after writing {Timing.EvictionBytes >> 20} MB, median of {rounds} rounds)", ["phase", .. calls.Select(c => c.Name)]);
            foreach (var name in LayerPhases.Names.Append(LayerPhases.WholeAfterPause).Append(LayerPhases.WholeBackToBack))
                coldTable.AddRow([name, .. cold.Select(r => (object)r[name])]);
            coldTable.AddNote("as the first table, but each call timed alone right after an untimed write of " + Timing.EvictionNote + ": " +
                "tables, moments and codes come from memory, as in a training step where the other blocks run between two uses of a table; " +
                "the last two rows time the whole call without the eviction: alone after 20 ms asleep, and as the second of two calls back to back");
            coldTable.AddNote(machine);
            coldTable.Publish(settings.Output);
        }
        var ab = new PerfTable($"profile-phases-d{s.Width}-before-after", $"Before ÷ after, d={s.Width}, N={n} " +
            $"(median of {3 * rounds} alternating rounds' ratios of {(settings.CpuTime ? "process CPU time" : "wall time")}, lowest–highest; > 1: on is faster)", ["comparison", .. calls.Select(c => c.Name)]);
        if (settings.ColdHalves)
        {
            var cold = new PerfTable($"profile-phases-d{s.Width}-cold", $"The fused pass and its halves on cold caches, d={s.Width}, N={n} " +
                $"(ms of {(settings.CpuTime ? "process CPU time" : "wall time")} per call, median of {3 * rounds} rounds)", ["phase", .. calls.Select(c => c.Name)]);
            var colds = calls.Select(c => c.Phases.Cold(3 * rounds)).ToArray();
            foreach (var name in LayerPhases.ColdNames)
                cold.AddRow([name, .. colds.Select(r => (object)r[name])]);
            cold.AddRow(["  the two halves together", .. colds.Select(r => (object)(r[LayerPhases.RowPass] + r[LayerPhases.Sweep]))]);
            cold.AddNote("each call right after writing " + Timing.EvictionNote + ", outside the timing: the data as a training step finds it");
            cold.AddNote(machine);
            cold.Publish(settings.Output);
        }
        var only = settings.Ratios?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var ratios = settings.NoRatios ? [] : calls.Select(c => c.Phases.Ratios(3 * rounds, only)).ToArray();
        foreach (var name in settings.NoRatios ? [] : LayerPhases.RatioNames.Where(n => only is null || ratios[0][n].Length > 0))
            ab.AddRow([name, .. ratios.Select(r => (object)r[name])]);
        ab.AddNote("TiledSharedForward changes only a call of several tables below 16 MB each (Q/K/V at d = 256): the other columns run the same " +
            "code both ways and show the noise; ManagedBiasSums: the bias gradients by the managed ColumnSums instead of torch's sum(0) (same bits); the sweep row times the AdamW sweep over the same elements viewed as rows 4× wider (a per-row cost would show as > 1)");
        ab.AddNote(machine);
        string shapes = string.Join("; ", calls.Select(c => $"{c.Name}: {c.Phases.Describe()}"));
        times.AddNote("each phase alone on the call's own tables, codes and a fixed ∂L/∂y; 'whole' = hash + gather forward + backward as in a " +
            "step (this step's AdamW armed, so the row pass applies it); 'everything else' = whole − (hash fwd + hash bwd + gather fwd + hit sort " +
            "+ row pass with update + bias sums); the tiled/token-major rows force TiledForwardMinTableBytes; " + shapes);
        times.AddNote(machine);
        rates.AddNote("bytes: gather = N·K·Σh·4 (rows read) + N·Σh·4 (written); row pass = N·K·Σh·4 (∂L/∂y rows) + Σ R·h·4 (table); update = " +
            "Σ R·h·(4 + 4 + 2·2 + 2·2) (table read + write, bf16 moments read + write; + 4 reading the gradient when alone)");
        rates.AddNote(machine);
        if (results.Length > 0)
        {
            times.Publish(settings.Output);
            rates.Publish(settings.Output);
        }
        if (!settings.NoRatios)
            ab.Publish(settings.Output);
        foreach (var c in calls)
            c.Phases.Dispose();
        model.Dispose();
        return 0;
    }

    private static void TrainStep(ModelOptimizer optimizer, LanguageModelTask task, int step)
    {
        using var scope = NewDisposeScope();
        optimizer.ZeroGrad(step);
        task.Loss(step).Loss.backward();
        optimizer.Step(step);
    }

    internal static string Format(double value) => value.ToString("F1", CultureInfo.InvariantCulture);
}
