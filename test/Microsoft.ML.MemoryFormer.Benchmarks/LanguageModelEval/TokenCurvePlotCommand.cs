using System.ComponentModel;
using System.Globalization;
using System.Text.RegularExpressions;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>
/// <c>bench lm-tokens-curves</c>: one chart and table of the learning curves that several <c>bench lm-tokens
/// --eval-every</c> processes printed (e.g. MemoryFormer and dense trained side by side, each in a process of its own,
/// on the CPU clock). It reads the curve lines from their console logs, so a run stopped before its end still shows the
/// part of its curve it reached.
/// </summary>
internal sealed partial class TokenCurvePlotCommand : Command<TokenCurvePlotCommand.Settings>
{
    /// <summary>Command-line settings.</summary>
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--curve <LABEL=LOG>")]
        [Description("A curve: its legend label and the console log of the lm-tokens --eval-every run that printed it. Repeat for each curve.")]
        public string[] Curves { get; init; } = [];

        [CommandOption("--clock <CLOCK>")]
        [Description("The x axis: \"cpu\" (training CPU seconds, the default) or \"wall\" (training seconds on the wall clock).")]
        public string Clock { get; init; } = "cpu";

        [CommandOption("--title <TEXT>")]
        [Description("The chart's title.")]
        public string Title { get; init; } = "GPT-2 tokens";

        [CommandOption("--output <PNG>")]
        [Description("The chart. Default artifacts/benchmarks/lm-tokens-curves.png.")]
        public string? Output { get; init; }

        public override ValidationResult Validate() =>
            Curves.Length == 0 || Curves.Any(c => !c.Contains('=', StringComparison.Ordinal)) ? ValidationResult.Error("--curve LABEL=LOG, at least one")
            : Clock is not ("cpu" or "wall") ? ValidationResult.Error("--clock: cpu or wall") : ValidationResult.Success();
    }

    /// <inheritdoc />
    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var curves = settings.Curves.Select(c => c.Split('=', 2)).Select(p => new TokenCurveReport.Curve(p[0], Read(p[1], settings.Clock == "cpu"))).ToList();
        string unit = settings.Clock == "cpu" ? "CPU s" : "s";
        string output = settings.Output ?? Path.Combine(BenchmarkPaths.RepoRoot, "artifacts", "benchmarks", "lm-tokens-curves.png");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        TokenCurveReport.SavePlot(curves, output, settings.Title, unit);
        AnsiConsole.WriteLine(TokenCurveReport.Markdown(curves, unit) + $"Plot: {output}");
        return 0;
    }

    /// <summary>The curve points a run printed ("step N: validation L after W s wall, C CPU s of training, load A").</summary>
    private static List<TokenCurveReport.Point> Read(string log, bool cpu)
    {
        var c = CultureInfo.InvariantCulture;
        var points = File.ReadLines(log).Select(l => CurveLine().Match(l)).Where(m => m.Success).Select(m => new TokenCurveReport.Point(
            int.Parse(m.Groups[1].Value, c), double.Parse(m.Groups[cpu ? 4 : 3].Value, c), double.Parse(m.Groups[2].Value, c),
            double.Parse(m.Groups[5].Value, c))).ToList();
        return points.Count > 0 ? points : throw new InvalidDataException($"{log} holds no curve line (run lm-tokens with --eval-every).");
    }

    [GeneratedRegex(@"step (\d+): validation ([\d.]+) after ([\d.]+) s wall, ([\d.]+) CPU s of training, load ([\d.]+)")]
    private static partial Regex CurveLine();
}
