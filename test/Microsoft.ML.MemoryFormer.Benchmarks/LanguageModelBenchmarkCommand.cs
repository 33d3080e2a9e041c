using System.ComponentModel;
using Microsoft.ML.MemoryFormer.Configuration;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary><c>bench lm</c>: trains MemoryFormer and the dense baseline at equal steps, or at equal wall-clock
/// (<c>--equal-time</c>), and compares them.</summary>
internal sealed class LanguageModelBenchmarkCommand : Command<LanguageModelBenchmarkCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--steps <N>")]
        [Description("Training steps per model (the PyTorch anchor uses 1500); with --equal-time, the dense model's steps, whose training time is the budget")]
        public int Steps { get; init; } = 1500;

        [CommandOption("--data <PATH>")]
        [Description("Text file (default ../shared/data/text/tinyshakespeare.txt from the repository root)")]
        public string? Data { get; init; }

        [CommandOption("--output <DIR>")]
        [Description("Folder for lm.md and lm-loss.png (default artifacts/benchmarks); --equal-time writes lm-equal-time.md and lm-equal-time-loss.png")]
        public string? Output { get; init; }

        [CommandOption("--validation-bytes <N>")]
        [Description("Score only the first N bytes of the validation split (default: all of it, as the anchor does)")]
        public int? ValidationBytes { get; init; }

        [CommandOption("--models <LIST>")]
        [Description("Comma-separated: mf, dense, mf-bf16 (MemoryFormer with bf16 table moments), mf-global (tables clipped by this step's global norm, the default before PreviousStep), mf-prevclip (PreviousStep set explicitly, = mf); default mf,dense. With --equal-time: dense and one MemoryFormer variant")]
        public string Models { get; init; } = "mf,dense";

        [CommandOption("--equal-time")]
        [Description("Equal wall-clock: dense trains --steps steps and its training time is the budget; MemoryFormer then trains, with its own full schedule, for the steps that fit in it, from its step time measured by a --calibration-steps run")]
        public bool EqualTime { get; init; }

        [CommandOption("--calibration-steps <N>")]
        [Description("With --equal-time: steps of the MemoryFormer run that measures its step time (at least 30; the first 10 are left out as warm-up). Default 60")]
        public int CalibrationSteps { get; init; } = 60;

        [CommandOption("--width <D>")]
        [Description("Model width d (4 heads, τ = 8: a multiple of 8). Default 256")]
        public int Width { get; init; } = 256;

        [CommandOption("--layers <N>")]
        [Description("Blocks. Default 4")]
        public int Layers { get; init; } = 4;

        [CommandOption("--seed <N>")]
        [Description("Seed of the models, batches and sampling. Default 1337 (every recorded run); another seed measures how far a number moves by chance")]
        public int Seed { get; init; } = LanguageModelBenchmark.DefaultSeed;

        [CommandOption("--sdpa-attention")]
        [Description("Attention by libtorch's scaled_dot_product_attention, set explicitly (KernelSettings.FusedCausalAttention off, the default)")]
        public bool SdpaAttention { get; init; }

        [CommandOption("--fused-attention")]
        [Description("The managed causal attention in training (KernelSettings.FusedCausalAttention on, opt-in): the quality comparison that kept it off")]
        public bool FusedAttention { get; init; }

        [CommandOption("--bf16-grad-rows")]
        [Description("The backward's row pass reads a bf16 copy of ∂L/∂y (KernelSettings.Bf16GradientRows on, opt-in): the quality comparison for that switch")]
        public bool Bf16GradRows { get; init; }

        [CommandOption("--bf16-dense")]
        [Description("The dense baseline's Linear layers in bf16 with fp32 master weights, autocast-style (KernelSettings.Bf16DenseLinear on, opt-in): the quality comparison for the dense-bf16 baseline of perf train")]
        public bool Bf16Dense { get; init; }

        [CommandOption("--bf16-fwd-tables")]
        [Description("The training forward reads a bf16 copy of each Memory Layer table (KernelSettings.Bf16ForwardTables on, opt-in): the quality comparison for that switch")]
        public bool Bf16FwdTables { get; init; }

        [CommandOption("--ema <D>")]
        [Description("The trainer's WeightAveragingDecay d in [[0, 1): the evaluated model is the moving average of its weights. Default off")]
        public double? Ema { get; init; }

        [CommandOption("--bucket-usage")]
        [Description("After each MemoryFormer's evaluation, its bucket health on the validation text: never and rarely selected rows, entropy and row norms per Memory Layer")]
        public bool BucketUsage { get; init; }

        [CommandOption("--hash-centering <KIND>")]
        [Description("MemoryFormer's HashCentering: None (default) or RunningMean, per-channel centring of every hash input")]
        public HashCentering HashCentering { get; init; }

        public override ValidationResult Validate()
        {
            if (Steps <= 0) return ValidationResult.Error($"--steps must be positive (got {Steps})");
            if (ValidationBytes is <= 0) return ValidationResult.Error($"--validation-bytes must be positive (got {ValidationBytes})");
            if (EqualTime && CalibrationSteps < MinCalibrationSteps)
                return ValidationResult.Error($"--calibration-steps must be at least {MinCalibrationSteps} (got {CalibrationSteps}): the step time is " +
                    "measured between progress reports every 10 steps, after the first 10");
            try { _ = LanguageModelBenchmarkModel.Parse(Models, EqualTime); }
            catch (ArgumentException e) { return ValidationResult.Error(e.Message); }
            if (SdpaAttention && FusedAttention) return ValidationResult.Error("--sdpa-attention and --fused-attention exclude each other");
            try { _ = (MemoryFormerConfig.Small256 with { Width = Width, Layers = Layers }).Validate(); }
            catch (ArgumentException e) { return ValidationResult.Error($"--width {Width} --layers {Layers}: {e.Message}"); }
            return ValidationResult.Success();
        }
    }

    private const int MinCalibrationSteps = 30;

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        string data = settings.Data ?? BenchmarkPaths.SharedData(Path.Combine("text", "tinyshakespeare.txt"));
        if (!File.Exists(data))
        {
            AnsiConsole.MarkupLine($"[yellow]Skipped: {Markup.Escape(data)} not found (developer data set, not part of the repository).[/]");
            return 0;
        }
        string output = settings.Output ?? Path.Combine(BenchmarkPaths.RepoRoot, "artifacts", "benchmarks");
        var models = LanguageModelBenchmarkModel.Parse(settings.Models, settings.EqualTime);
        var benchmark = new LanguageModelBenchmark(data, settings.Steps, settings.ValidationBytes, settings.Width, settings.Layers, settings.Seed)
        {
            WeightAveragingDecay = settings.Ema, BucketUsage = settings.BucketUsage, HashCentering = settings.HashCentering,
        };
        LanguageModelBenchmarkReport report = null!;
        Runtime.KernelSettings.Current.With(k =>
        {
            k.FusedCausalAttention = settings.FusedAttention || (!settings.SdpaAttention && k.FusedCausalAttention);
            k.Bf16GradientRows |= settings.Bf16GradRows;
            k.Bf16DenseLinear |= settings.Bf16Dense;
            k.Bf16ForwardTables |= settings.Bf16FwdTables;
        }, () => report = settings.EqualTime
            ? benchmark.RunEqualTime(models[0], models[1], settings.CalibrationSteps, cancellationToken)
            : benchmark.Run(models, cancellationToken));
        Directory.CreateDirectory(output);
        string name = settings.EqualTime ? "lm-equal-time" : "lm";
        string markdown = Path.Combine(output, $"{name}.md"), chart = Path.Combine(output, $"{name}-loss.png");
        File.WriteAllText(markdown, report.ToMarkdown());
        report.SaveLossChart(chart);
        AnsiConsole.WriteLine(report.ToMarkdown());
        foreach (var result in report.Results.Where(r => r.Buckets.Length > 0))
            AnsiConsole.WriteLine($"{result.Name}: {result.Buckets}");
        AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(markdown)} and {Markup.Escape(chart)}[/]");
        return 0;
    }
}
