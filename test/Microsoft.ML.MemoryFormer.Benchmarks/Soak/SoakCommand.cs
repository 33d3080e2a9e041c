using System.ComponentModel;
using System.Globalization;
using System.Text;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Soak;

/// <summary>
/// <c>bench soak</c>: a long training run that logs loss, tokens/s and process memory every minute and ends with a
/// checkpoint/resume cycle (issue 8). Writes soak.md to the output folder.
/// </summary>
internal sealed class SoakCommand : Command<SoakCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--minutes <N>")]
        [Description("Training time before the checkpoint/resume cycle (default 30)")]
        public double Minutes { get; init; } = 30;

        [CommandOption("--checkpoint-minutes <N>")]
        [Description("Periodic checkpoint interval (default 5, at most half of --minutes)")]
        public double CheckpointMinutes { get; init; } = 5;

        [CommandOption("--data <PATH>")]
        [Description("Text file (default ../shared/data/text/tinyshakespeare.txt from the repository root)")]
        public string? Data { get; init; }

        [CommandOption("--output <DIR>")]
        [Description("Folder for soak.md and the checkpoints (default artifacts/benchmarks)")]
        public string? Output { get; init; }

        public override ValidationResult Validate() => Minutes > 0 && CheckpointMinutes > 0
            ? ValidationResult.Success() : ValidationResult.Error("--minutes and --checkpoint-minutes must be positive");
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
        Directory.CreateDirectory(output);
        var duration = TimeSpan.FromMinutes(settings.Minutes);
        var interval = TimeSpan.FromMinutes(Math.Min(settings.CheckpointMinutes, settings.Minutes / 2));
        AnsiConsole.MarkupLine($"Soak: Small256 language model on {Markup.Escape(Path.GetFileName(data))} for {settings.Minutes} min, " +
            $"checkpoint every {interval.TotalMinutes:0.##} min");
        AnsiConsole.WriteLine("minute     step     loss   tokens/s   working set MB   private MB   managed MB");
        var (samples, cycle) = new SoakBenchmark(data, output, duration, interval).Run(s => AnsiConsole.WriteLine(Line(s)));
        string markdown = ToMarkdown(settings, Path.GetFileName(data), samples, cycle);
        string path = Path.Combine(output, "soak.md");
        File.WriteAllText(path, markdown);
        AnsiConsole.WriteLine(markdown);
        AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(path)}[/]");
        return cycle.LossesIdentical && cycle.StateIdentical ? 0 : 1;
    }

    private static string Line(SoakSample s) => string.Create(CultureInfo.InvariantCulture,
        $"{s.Minute,6:F1} {s.Step,8} {s.Loss,8:F4} {s.TokensPerSecond,10:F0} {Mb(s.WorkingSetBytes),16:F0} {Mb(s.PrivateBytes),12:F0} {Mb(s.ManagedBytes),12:F0}");

    private static double Mb(long bytes) => bytes / (1024.0 * 1024.0);

    private static string ToMarkdown(Settings settings, string data, IReadOnlyList<SoakSample> samples, SoakCycle cycle)
    {
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"## Training soak ({settings.Minutes} min, Small256 byte-level language model on {data})");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"`build/build.sh bench soak --minutes {settings.Minutes}` on {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd}.");
        md.AppendLine();
        md.AppendLine("| minute | step | loss | tokens/s | working set (MB) | private (MB) | managed heap (MB) |");
        md.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var s in samples)
            md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {s.Minute:F1} | {s.Step} | {s.Loss:F4} | {s.TokensPerSecond:F0} | {Mb(s.WorkingSetBytes):F0} | {Mb(s.PrivateBytes):F0} | {Mb(s.ManagedBytes):F0} |"));
        md.AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Checkpoint/resume cycle: cancelled at step {cycle.CancelledAtStep} (cancel to exception, checkpoint included: " +
            $"{cycle.CancelSeconds:F2} s; checkpoint {Mb(cycle.CheckpointBytes):F1} MB); resumed the periodic checkpoint of step " +
            $"{cycle.ResumedFromStep} ({cycle.ResumeSeconds:F2} s to the end of the first step) and replayed to step {cycle.CancelledAtStep}: " +
            $"losses {(cycle.LossesIdentical ? "bit-identical" : "DIFFERENT")}, weights and optimizer state " +
            $"{(cycle.StateIdentical ? "bit-identical" : "DIFFERENT")}."));
        return md.ToString();
    }
}
