using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Buckets;

/// <summary>
/// <c>buckets</c>: bucket health of a byte-level MemoryFormer LM trained briefly on a text file, twice from the same
/// seed: with dense AdamW (every table row decays every step, as in the paper and the official code) and with lazy
/// table updates (a row decays and moves only in steps that hit it). Prints, per run, the validation loss, the
/// never-hit fraction and entropy of every layer, and the mean L2 norm of table rows grouped by how often the run hit
/// them; writes a plot in the style of the paper's Fig. 4 (hits per bucket of the first and last table of Q/K/V and
/// of both Memory Block layers of block 1).
/// </summary>
internal sealed class BucketsCommand : Command<BucketsCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--data <PATH>")]
        [Description("Text file (default ../shared/data/text/tinyshakespeare.txt from the repository root)")]
        public string? Data { get; init; }

        [CommandOption("--steps <N>")]
        [Description("Training steps per run (default 150)")]
        [DefaultValue(150)]
        public int Steps { get; init; } = 150;

        [CommandOption("--batch <N>")]
        [Description("Windows per step (default 8; small batches leave more rows unhit per step)")]
        [DefaultValue(8)]
        public int Batch { get; init; } = 8;

        [CommandOption("--plot <PATH>")]
        [Description("PNG to write (default artifacts/bucket-usage.png under the repository root)")]
        public string? Plot { get; init; }
    }

    private const int Context = 64;
    private const int Seed = 1337;

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        string path = settings.Data ?? BenchmarkPaths.SharedData(Path.Combine("text", "tinyshakespeare.txt"));
        if (!File.Exists(path))
        {
            Console.Error.WriteLine($"Text file not found: {path}. Pass --data <PATH>.");
            return 1;
        }
        var bytes = File.ReadAllBytes(path);
        int split = (int)(bytes.Length * 0.9);
        using var train = Windows(bytes.AsSpan(0, split));
        using var validation = Windows(bytes.AsSpan(split, Math.Min(bytes.Length - split, 64 * (Context + 1))));
        var config = MemoryFormerConfig.Small256 with { Width = 128, Layers = 2, Heads = 4, ContextLength = Context };
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"buckets: {Path.GetFileName(path)}, d = {config.Width}, {config.Layers} blocks, K = {config.ChunkCount}, τ = {config.BitsPerChunk}, " +
            $"T = {Context}, batch {settings.Batch}, {settings.Steps} steps, table lr 3e-3, weight decay 0.1; machine: {Perf.MachineFigures.Measure()}"));
        IReadOnlyList<BucketUsage>? plotted = null;
        foreach (bool lazy in new[] { false, true })
        {
            random.manual_seed(Seed);
            using var model = new LanguageModel(config);
            var initialNorms = RowNorms(model);
            using var recorder = BucketUsageRecorder.Attach(model);            // counts every training forward of the run
            var task = new LanguageModelTask(model, train, null, settings.Batch, Seed, CPU);
            var options = new TrainingOptions
            {
                MaxSteps = settings.Steps, LearningRate = 1e-3, TableLearningRate = 3e-3, WeightDecay = 0.1,
                TableWeightDecay = 0.1, LazyTableUpdates = lazy, WarmupSteps = Math.Min(20, settings.Steps / 10),
                ReportEvery = settings.Steps, Seed = Seed,
            };
            var clock = Stopwatch.StartNew();
            TrainingLoop.Run(model, task, options, cancellation: cancellationToken);
            var usage = recorder.Snapshot();
            double loss;
            using (no_grad()) loss = task.LossOf(validation).item<float>();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"\n{(lazy ? "lazy table updates" : "dense AdamW (default)")}: validation loss {loss:F4} nats/byte after {clock.Elapsed.TotalSeconds:F0} s"));
            foreach (var u in usage) Console.WriteLine("  " + u);
            Console.WriteLine(NormsByHits(usage, initialNorms, RowNorms(model)));
            plotted ??= usage;
        }
        string png = settings.Plot ?? Path.Combine(BenchmarkPaths.RepoRoot, "artifacts", "bucket-usage.png");
        BucketPlot.Write(plotted!, png);
        Console.WriteLine($"\nplot (dense AdamW run): {png}");
        return 0;
    }

    /// <summary>L2 norm of every table row, per layer in the order <see cref="BucketUsageRecorder"/> reports them
    /// (Q/K/V: the value table, which shares its hash with Q and K).</summary>
    private static List<float[]> RowNorms(LanguageModel model)
    {
        var qk = model.named_modules().Where(m => m.name.EndsWith(".query", StringComparison.Ordinal) || m.name.EndsWith(".key", StringComparison.Ordinal))
            .Select(m => m.module).ToHashSet(ReferenceEqualityComparer.Instance);
        return [.. ParameterGroups.TableLayers(model).Where(l => !qk.Contains(l)).Select(l =>
        {
            using var norms = l.Table.detach().norm(1);
            return norms.data<float>().ToArray();
        })];
    }

    /// <summary>Mean ratio of each table row's final to initial L2 norm, rows grouped by how often the run hit them.</summary>
    private static string NormsByHits(IReadOnlyList<BucketUsage> usage, List<float[]> before, List<float[]> after)
    {
        var rows = usage.SelectMany((u, i) => u.Counts.Select((h, r) => (Hits: h, Ratio: (double)after[i][r] / before[i][r]))).ToList();
        long[] edges = [0, 1, 10, 100, 1000, 10000, long.MaxValue];
        var text = new StringBuilder("  row norm / initial row norm, by hits over the run:");
        for (int i = 0; i + 1 < edges.Length; i++)
        {
            var group = rows.Where(p => p.Hits >= edges[i] && p.Hits < edges[i + 1]).Select(p => p.Ratio).ToList();
            if (group.Count == 0) continue;
            string range = edges[i + 1] == long.MaxValue ? $"≥{edges[i]}" : edges[i] + 1 == edges[i + 1] ? $"{edges[i]}" : $"{edges[i]}–{edges[i + 1] - 1}";
            text.Append(CultureInfo.InvariantCulture, $" [{range} hits: {group.Average():F3}, {group.Count} rows]");
        }
        return text.ToString();
    }

    private static Tensor Windows(ReadOnlySpan<byte> bytes)
    {
        int count = (bytes.Length - 1) / Context;
        var ids = new long[count * (Context + 1)];
        for (int w = 0; w < count; w++)
            for (int t = 0; t <= Context; t++) ids[w * (Context + 1) + t] = bytes[w * Context + t];
        return tensor(ids, [count, Context + 1]);
    }
}
