using System.ComponentModel;
using System.Globalization;
using System.Text;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>
/// <c>bench lm-tokens</c>: MemoryFormer vs the dense transformer of the same shape as GPT-2-token language models on
/// WikiText-2 (trained on <c>wikitext2_valid.txt</c>, since the train split is not in <c>../shared/data</c>; scored
/// on <c>wikitext2_test.txt</c>), (a) at equal steps and (b) at equal wall-clock: the model that was faster at equal
/// steps is trained again, with its own full schedule, for the steps that fit in the slower model's training time.
/// Reports test perplexity per GPT-2 token, bits per byte, train tokens/s and the machine's figures from the same run.
/// </summary>
internal sealed class TokenLanguageModelCommand : Command<TokenLanguageModelCommand.Settings>
{
    /// <summary>Command-line settings.</summary>
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--steps <N>")]
        [Description("Training steps per model at equal steps. Default 200.")]
        public int Steps { get; init; } = 200;

        [CommandOption("--width <D>")]
        [Description("Model width d (τ = 8). Default 128.")]
        public int Width { get; init; } = 128;

        [CommandOption("--layers <N>")]
        [Description("Blocks. Default 2.")]
        public int Layers { get; init; } = 2;

        [CommandOption("--batch <N>")]
        [Description("Windows of 128 tokens per step. Default 16.")]
        public int Batch { get; init; } = 16;

        [CommandOption("--test-chars <N>")]
        [Description("Score only the first N characters of wikitext2_test.txt (default: all of it).")]
        public int? TestChars { get; init; }

        [CommandOption("--output <FILE>")]
        [Description("Markdown file the table is written to.")]
        public string? Output { get; init; }

        public override ValidationResult Validate() =>
            Steps > 0 && Width > 0 && Layers > 0 && Batch > 0 && TestChars is null or > 0
                ? ValidationResult.Success() : ValidationResult.Error("--steps, --width, --layers, --batch and --test-chars must be positive");
    }

    private const int ContextLength = SmallLanguageModel.ContextLength;
    private const int Seed = SmallLanguageModel.Seed;

    private sealed record Run(string Label, string Budget, int Steps, double Seconds, double TokensPerSecond, LanguageModelMetrics Test, double TrainLoss);

    /// <inheritdoc />
    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        string trainPath = BenchmarkPaths.SharedData(Path.Combine("lm-eval", "wikitext2_valid.txt"));
        string testPath = BenchmarkPaths.SharedData(Path.Combine("lm-eval", "wikitext2_test.txt"));
        if (!File.Exists(trainPath) || !File.Exists(testPath))
        {
            AnsiConsole.MarkupLineInterpolated($"[yellow]Skipped: {trainPath} or {testPath} not found (developer data, not part of the repository).[/]");
            return 0;
        }
        string testText = File.ReadAllText(testPath);
        if (settings.TestChars is { } n && n < testText.Length) testText = testText[..n];
        var ml = new MLContext(Seed);
        var train = ml.Data.LoadFromEnumerable(new[] { new SmallLanguageModel.Document { Text = File.ReadAllText(trainPath) } });
        var test = ml.Data.LoadFromEnumerable(new[] { new SmallLanguageModel.Document { Text = testText } });
        var runs = new List<Run>();
        foreach (var (kind, label) in new[] { (TransformerKind.MemoryFormer, "MemoryFormer"), (TransformerKind.Dense, "Dense") })
            runs.Add(Train(ml, kind, label, "equal steps", settings.Steps, train, test, settings, cancellationToken));
        // Equal wall-clock: the faster model gets the steps that fit in the slower one's training time (steps × slower s / faster s).
        var (fast, slow) = runs[0].Seconds <= runs[1].Seconds ? (runs[0], runs[1]) : (runs[1], runs[0]);
        int steps = StepTiming.FromRun(settings.Steps, fast.Seconds).StepsThatFit(slow.Seconds);
        var fastKind = fast.Label == "Dense" ? TransformerKind.Dense : TransformerKind.MemoryFormer;
        string budget = $"equal time ({slow.Seconds:F0} s of {slow.Label})";
        runs.Add(steps == settings.Steps ? fast with { Budget = budget + ", same steps: not retrained" }   // training is seeded: a rerun repeats it
            : Train(ml, fastKind, fast.Label, budget, steps, train, test, settings, cancellationToken));
        string markdown = Markdown(runs, settings, testText.Length) + Environment.NewLine + Perf.MachineFigures.Measure() + Environment.NewLine;
        AnsiConsole.WriteLine(markdown);
        if (settings.Output is { } output) File.WriteAllText(output, markdown);
        return 0;
    }

    private static Run Train(MLContext ml, TransformerKind kind, string label, string budget, int steps, IDataView train, IDataView test,
        Settings settings, CancellationToken cancellationToken)
    {
        AnsiConsole.MarkupLineInterpolated($"training {label} for {steps} steps ({budget}) ...");
        var reports = new List<TrainingProgress>();
        var options = SmallLanguageModel.Options(kind, settings.Width, settings.Layers, settings.Batch, steps, TextTokenizerKind.Gpt2, cancellationToken);
        options.ReportEvery = 10;
        options.Progress = new Progress(reports);
        using var model = ml.Text.MemoryFormer(options).Fit(train);
        var last = reports.Last(r => r.ValidationLoss is null);   // training only: the closing validation is not timed
        var metrics = model.Evaluate(test, cancellationToken: cancellationToken);
        var run = new Run(label, budget, steps, last.Elapsed.TotalSeconds * steps / last.Step, last.ItemsPerSecond, metrics,
            model.TrainingResult!.LossHistory.TakeLast(20).Average());
        AnsiConsole.MarkupLineInterpolated($"  {run.Seconds:F0} s, test perplexity {metrics.Perplexity:F1}");
        return run;
    }

    private static string Markdown(List<Run> runs, Settings settings, int testChars)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine("| model | budget | steps | train s | train tokens/s | **test perplexity (per GPT-2 token)** | test nats/token | test bits/byte | train loss (last 20 steps) |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in runs)
            text.AppendLine(c, $"| {r.Label} | {r.Budget} | {r.Steps} | {r.Seconds:F0} | {r.TokensPerSecond:F0} | **{r.Test.Perplexity:F1}** | " +
                $"{r.Test.LossNatsPerToken:F4} | {r.Test.BitsPerByte:F4} | {r.TrainLoss:F3} |");
        text.AppendLine();
        text.AppendLine(c, $"GPT-2 tokens, d = {settings.Width}, {settings.Layers} blocks, 4 heads, τ = 8, T = {ContextLength}, batch {settings.Batch}, " +
            $"seed {Seed}; trained on wikitext2_valid.txt (the train split is not in ../shared/data), scored on the first {testChars:N0} characters " +
            $"of wikitext2_test.txt ({runs[0].Test.Tokens:N0} tokens, non-overlapping {ContextLength}-token windows).");
        return text.ToString();
    }

    private sealed class Progress(List<TrainingProgress> reports) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => reports.Add(value);
    }
}
