using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary><c>bench lm</c>: trains MemoryFormer and the dense baseline at equal steps and compares them.</summary>
internal sealed class LanguageModelBenchmarkCommand : Command<LanguageModelBenchmarkCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--steps <N>")]
        [Description("Training steps per model (the PyTorch anchor uses 1500)")]
        public int Steps { get; init; } = 1500;

        [CommandOption("--data <PATH>")]
        [Description("Text file (default ../shared/data/text/tinyshakespeare.txt from the repository root)")]
        public string? Data { get; init; }

        [CommandOption("--output <DIR>")]
        [Description("Folder for lm.md and lm-loss.png (default artifacts/benchmarks)")]
        public string? Output { get; init; }

        [CommandOption("--validation-bytes <N>")]
        [Description("Score only the first N bytes of the validation split (default: all of it, as the anchor does)")]
        public int? ValidationBytes { get; init; }

        [CommandOption("--models <LIST>")]
        [Description("Comma-separated: mf, dense, mf-bf16 (MemoryFormer with bf16 table moments), mf-global (tables clipped by this step's global norm, the default before PreviousStep), mf-prevclip (PreviousStep set explicitly, = mf); default mf,dense")]
        public string Models { get; init; } = "mf,dense";

        public override ValidationResult Validate() =>
            Steps > 0 ? ValidationResult.Success() : ValidationResult.Error("--steps must be positive");
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        string data = settings.Data ?? BenchmarkPaths.SharedData(Path.Combine("text", "tinyshakespeare.txt"));
        if (!File.Exists(data))
        {
            AnsiConsole.MarkupLine($"[yellow]Skipped: {Markup.Escape(data)} not found (developer data set, not part of the repository).[/]");
            return 0;
        }
        string output = settings.Output ?? Path.Combine(BenchmarkPaths.RepoRoot, "artifacts", "benchmarks");
        var models = settings.Models.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var report = new LanguageModelBenchmark(data, settings.Steps, settings.ValidationBytes).Run(models, cancellationToken);
        Directory.CreateDirectory(output);
        string markdown = Path.Combine(output, "lm.md"), chart = Path.Combine(output, "lm-loss.png");
        File.WriteAllText(markdown, report.ToMarkdown());
        report.SaveLossChart(chart);
        AnsiConsole.WriteLine(report.ToMarkdown());
        AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(markdown)} and {Markup.Escape(chart)}[/]");
        return 0;
    }
}
