using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Text;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>
/// <c>bench blimp</c>: trains a small MemoryFormer and the dense baseline of the same shape as language models (byte-level
/// or GPT-2 tokens) for the same number of steps on one text, then scores both zero-shot on the BLiMP minimal pairs in
/// <c>../shared/data/lm-eval/blimp</c> (<see cref="MemoryFormerLanguageModelTransformer.EvaluateMinimalPairs"/>:
/// accuracy = share of pairs with log P(good) &gt; log P(bad)) and prints a table per paradigm.
/// </summary>
internal sealed class BlimpCommand : Command<BlimpCommand.Settings>
{
    /// <summary>Command-line settings.</summary>
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--steps <N>")]
        [Description("Training steps per model. Default 300.")]
        public int Steps { get; init; } = 300;

        [CommandOption("--data <PATH>")]
        [Description("Training text (default ../shared/data/lm-eval/wikitext2_valid.txt; BLiMP is never trained on).")]
        public string? Data { get; init; }

        [CommandOption("--blimp <DIR>")]
        [Description("Folder of BLiMP *.jsonl files (default ../shared/data/lm-eval/blimp).")]
        public string? Blimp { get; init; }

        [CommandOption("--pairs <N>")]
        [Description("Pairs scored per paradigm (the first N of each file). Default 200.")]
        public int Pairs { get; init; } = 200;

        [CommandOption("--width <D>")]
        [Description("Model width d (τ = 8). Default 128.")]
        public int Width { get; init; } = 128;

        [CommandOption("--layers <N>")]
        [Description("Blocks. Default 2.")]
        public int Layers { get; init; } = 2;

        [CommandOption("--tokenizer <KIND>")]
        [Description("byte (default) or gpt2: the models' tokens.")]
        public string Tokenizer { get; init; } = "byte";

        [CommandOption("--output <FILE>")]
        [Description("Markdown file the table is written to.")]
        public string? Output { get; init; }

        public override ValidationResult Validate() =>
            Steps <= 0 || Pairs <= 0 || Width <= 0 || Layers <= 0 ? ValidationResult.Error("--steps, --pairs, --width and --layers must be positive")
            : Tokenizer is not ("byte" or "gpt2") ? ValidationResult.Error($"--tokenizer must be byte or gpt2; got '{Tokenizer}'")
            : ValidationResult.Success();

        /// <summary>The tokenizer kind <see cref="Tokenizer"/> names.</summary>
        public TextTokenizerKind TokenizerKind => Tokenizer == "gpt2" ? TextTokenizerKind.Gpt2 : TextTokenizerKind.ByteLevel;
    }

    private const int ContextLength = SmallLanguageModel.ContextLength;   // every BLiMP sentence of the shipped files fits in 128 bytes after EOT
    private const int Seed = SmallLanguageModel.Seed;

    /// <inheritdoc />
    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        string data = settings.Data ?? BenchmarkPaths.SharedData(Path.Combine("lm-eval", "wikitext2_valid.txt"));
        string blimp = settings.Blimp ?? BenchmarkPaths.SharedData(Path.Combine("lm-eval", "blimp"));
        if (!File.Exists(data) || !Directory.Exists(blimp))
        {
            AnsiConsole.MarkupLineInterpolated($"[yellow]Skipped: {data} or {blimp} not found (developer data, not part of the repository).[/]");
            return 0;
        }
        var tasks = BlimpTask.LoadAll(blimp, settings.Pairs)
            .Select(t => t with { Pairs = t.Pairs.Where(p => Fits(p.Good) && Fits(p.Bad)).ToArray() }).ToArray();
        var ml = new MLContext(Seed);
        var train = ml.Data.LoadFromEnumerable(new[] { new SmallLanguageModel.Document { Text = File.ReadAllText(data) } });
        var columns = new List<(string Label, TimeSpan Time, double Loss, MinimalPairsMetrics[] Scores)>();
        foreach (var (kind, label) in new[] { (TransformerKind.MemoryFormer, "MemoryFormer"), (TransformerKind.Dense, "Dense") })
        {
            AnsiConsole.MarkupLineInterpolated($"training {label} for {settings.Steps} steps ...");
            var options = SmallLanguageModel.Options(kind, settings.Width, settings.Layers, batchSize: 16, settings.Steps,
                settings.TokenizerKind, cancellationToken);
            var clock = Stopwatch.StartNew();
            using var model = ml.Text.MemoryFormer(options).Fit(train);
            var time = clock.Elapsed;
            var scores = tasks.Select(t => model.EvaluateMinimalPairs(t.Pairs, cancellationToken)).ToArray();
            columns.Add((label, time, model.TrainingResult!.LossHistory.TakeLast(20).Average(), scores));
            AnsiConsole.MarkupLineInterpolated($"  {time.TotalSeconds:F0} s, mean accuracy {scores.Average(s => s.Accuracy):P1}");
        }
        string markdown = Markdown(tasks, columns, settings) + Environment.NewLine + Perf.MachineFigures.Measure() + Environment.NewLine;
        AnsiConsole.WriteLine(markdown);
        if (settings.Output is { } output) File.WriteAllText(output, markdown);
        return 0;
    }

    private static bool Fits(string sentence) => System.Text.Encoding.UTF8.GetByteCount(sentence) <= ContextLength;

    private static string Markdown(IReadOnlyList<BlimpTask> tasks, List<(string Label, TimeSpan Time, double Loss, MinimalPairsMetrics[] Scores)> columns,
        Settings settings)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine(c, $"| BLiMP paradigm | pairs | {string.Join(" | ", columns.Select(m => m.Label + " accuracy"))} |");
        text.AppendLine("| --- | --- |" + string.Concat(columns.Select(_ => " --- |")));
        for (int i = 0; i < tasks.Count; i++)
            text.AppendLine(c, $"| {tasks[i].Name} | {tasks[i].Pairs.Count} | {string.Join(" | ", columns.Select(m => m.Scores[i].Accuracy.ToString("P1", c)))} |");
        text.AppendLine(c, $"| **mean over paradigms** | {tasks.Sum(t => t.Pairs.Count)} | {string.Join(" | ", columns.Select(m => m.Scores.Average(s => s.Accuracy).ToString("P1", c)))} |");
        text.AppendLine();
        text.Append(c, $"{(settings.TokenizerKind == TextTokenizerKind.Gpt2 ? "GPT-2-token" : "Byte-level")} LMs, d = {settings.Width}, {settings.Layers} blocks, 4 heads, τ = 8, T = {ContextLength}, batch 16, ");
        text.Append(c, $"{settings.Steps} steps (seed {Seed}) on {Path.GetFileName(settings.Data ?? "wikitext2_valid.txt")}; ");
        text.AppendLine(string.Join("; ", columns.Select(m => string.Create(c, $"{m.Label}: {m.Time.TotalSeconds:F0} s of training, training loss over the last 20 steps {m.Loss:F3} nats per token"))) + ".");
        return text.ToString();
    }
}
