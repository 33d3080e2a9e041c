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

        [CommandOption("--validation-chars <N>")]
        [Description("Tuning mode: score on the N characters of wikitext2_test.txt that follow the first --test-chars " +
            "(default 300,000) instead of the test text, and make no equal-time row.")]
        public int? ValidationChars { get; init; }

        [CommandOption("--sealed-test <FILE>")]
        [Description("Tuning mode: also score each model on the test text (the first --test-chars) and write only that " +
            "table to FILE, not to the console, to be opened once the settings are chosen on the tuning text.")]
        public string? SealedTest { get; init; }

        [CommandOption("--models <LIST>")]
        [Description("Models to train: mf, dense or both (\"mf,dense\", the default; equal time needs both).")]
        public string Models { get; init; } = "mf,dense";

        [CommandOption("--mf-set <ASSIGNMENTS>")]
        [Description("MemoryFormer's settings on top of the recipe: option fields and Architecture.* properties, " +
            "e.g. \"TableLearningRate=0.01,Architecture.BitsPerChunk=4\".")]
        public string? MemoryFormerSet { get; init; }

        [CommandOption("--dense-set <ASSIGNMENTS>")]
        [Description("The dense model's settings on top of the recipe, e.g. \"LearningRate=0.003\".")]
        public string? DenseSet { get; init; }

        [CommandOption("--adaptive-cutoffs <LIST>")]
        [Description("Both models get the adaptive softmax head (MemoryFormerConfig.AdaptiveSoftmaxCutoffs) with these " +
            "frequency-rank cutoffs, e.g. \"2000,10000\". Default: the full 50,304-way head.")]
        public string? AdaptiveCutoffs { get; init; }

        /// <summary>The parsed <see cref="AdaptiveCutoffs"/>, or null.</summary>
        public int[]? Cutoffs => string.IsNullOrWhiteSpace(AdaptiveCutoffs) ? null
            : [.. AdaptiveCutoffs.Split(',', StringSplitOptions.TrimEntries).Select(c => int.Parse(c, CultureInfo.InvariantCulture))];

        [CommandOption("--extra-train <FILES>")]
        [Description("More training text for both models: comma-separated files under ../shared/data (e.g. " +
            "\"text/moby_dick.txt,text/tinyshakespeare.txt\"), appended after wikitext2_valid.txt. Default: none.")]
        public string? ExtraTrain { get; init; }

        /// <summary>The files named by <see cref="ExtraTrain"/>, relative to ../shared/data.</summary>
        public string[] ExtraTrainFiles => string.IsNullOrWhiteSpace(ExtraTrain) ? []
            : ExtraTrain.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

        [CommandOption("--seed <N>")]
        [Description("Seed of both models (initialisation, batch order, dropout). Default 1337.")]
        public int Seed { get; init; } = SmallLanguageModel.Seed;

        [CommandOption("--threads <N>")]
        [Description("torch.set_num_threads for the run (the managed kernels follow it). Default: torch's.")]
        public int Threads { get; init; }

        [CommandOption("--eval-every <N>")]
        [Description("Learning curves: every N steps (and at the last) each model is scored on the tuning text (the " +
            "--validation-chars characters after the first --test-chars, default 200,000 after 300,000); the passes are " +
            "taken out of the training seconds, so of the equal-time budget too. Default 0: no curve.")]
        public int EvalEvery { get; init; }

        [CommandOption("--calibration-steps <N>")]
        [Description("Equal time only: Dense trains --steps steps, a calibration run of MemoryFormer this long measures " +
            "its step time (StepTiming.FromProgress), and MemoryFormer trains the steps that fit in Dense's training " +
            "seconds; no equal-steps MemoryFormer run. Default 0: equal steps, then the faster model again.")]
        public int CalibrationSteps { get; init; }

        [CommandOption("--clock <CLOCK>")]
        [Description("What measures training time: \"wall\" (the training loop's clock, the default) or \"cpu\" (this " +
            "process's CPU seconds, Environment.CpuUsage, tokenising and validation taken out): on a loaded machine the " +
            "wall clock measures the other work; with --threads 1 a CPU second is about a second of one core.")]
        public string Clock { get; init; } = "wall";

        /// <summary>Whether --clock cpu is set.</summary>
        public bool CpuClock => Clock.Equals("cpu", StringComparison.OrdinalIgnoreCase);

        [CommandOption("--curve-plot <FILE>")]
        [Description("PNG of the learning curves (validation loss against training seconds) when --eval-every is set. " +
            "Default artifacts/benchmarks/lm-tokens-curves.png.")]
        public string? CurvePlot { get; init; }

        [CommandOption("--bucket-usage")]
        [Description("After training MemoryFormer, its bucket health on the scored text (never and rarely selected rows, " +
            "entropy and row norms per Memory Layer; BucketHealth) and the training log's last bucket summary.")]
        public bool BucketUsage { get; init; }

        [CommandOption("--output <FILE>")]
        [Description("Markdown file the table is written to.")]
        public string? Output { get; init; }

        /// <summary>The models named by <see cref="Models"/>, MemoryFormer first.</summary>
        public IReadOnlyList<TransformerKind> Kinds =>
            [.. new[] { ("mf", TransformerKind.MemoryFormer), ("dense", TransformerKind.Dense) }
                .Where(m => Models.Split(',', StringSplitOptions.TrimEntries).Contains(m.Item1, StringComparer.OrdinalIgnoreCase)).Select(m => m.Item2)];

        public override ValidationResult Validate() =>
            !(Steps > 0 && Width > 0 && Layers > 0 && Batch > 0 && TestChars is null or > 0 && ValidationChars is null or > 0 && Threads >= 0
                && EvalEvery >= 0 && CalibrationSteps >= 0)
                ? ValidationResult.Error("--steps, --width, --layers, --batch, --test-chars and --validation-chars must be positive")
                : Kinds.Count == 0 ? ValidationResult.Error("--models: name mf, dense or both")
                : !CpuClock && !Clock.Equals("wall", StringComparison.OrdinalIgnoreCase) ? ValidationResult.Error("--clock: wall or cpu")
                : CalibrationSteps > 0 && (Kinds.Count != 2 || ValidationChars is not null)
                    ? ValidationResult.Error("--calibration-steps makes an equal-time pair: both models, no --validation-chars")
                : ValidationResult.Success();
    }

    /// <summary>Characters of the test file the tuning text starts after when --test-chars is not given.</summary>
    private const int DefaultValidationOffset = 300_000;

    private const int ContextLength = SmallLanguageModel.ContextLength;

    /// <summary>Default length of the tuning text when --validation-chars is not given (the tuning rounds' 200,000).</summary>
    private const int DefaultValidationChars = 200_000;

    /// <summary>One trained model: <see cref="Load"/> is the mean 1-minute load average at its progress reports;
    /// <see cref="Curve"/> its validation losses on the tuning text (empty without --eval-every).</summary>
    private sealed record Run(TransformerKind Kind, string Label, string Budget, int Steps, double Seconds, double WallSeconds, double TokensPerSecond,
        LanguageModelMetrics? Test, double TrainLoss, double Load, IReadOnlyList<TokenCurveReport.Point> Curve)
    {
        /// <summary>The run's progress reports (a calibration run's step time is read from them).</summary>
        public IReadOnlyList<TrainingProgress>? Reports { get; init; }

        /// <summary>With --bucket-usage, MemoryFormer's bucket health (<see cref="BucketHealth"/>) and last training log line; else empty.</summary>
        public string Buckets { get; init; } = "";
    }

    /// <inheritdoc />
    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        string trainPath = BenchmarkPaths.SharedData(Path.Combine("lm-eval", "wikitext2_valid.txt"));
        string testPath = BenchmarkPaths.SharedData(Path.Combine("lm-eval", "wikitext2_test.txt"));
        var extraPaths = settings.ExtraTrainFiles.Select(BenchmarkPaths.SharedData).ToArray();
        if (!File.Exists(trainPath) || !File.Exists(testPath) || extraPaths.Any(f => !File.Exists(f)))
        {
            AnsiConsole.MarkupLineInterpolated($"[yellow]Skipped: {trainPath}, {testPath} or an --extra-train file not found (developer data, not part of the repository).[/]");
            return 0;
        }
        if (settings.Threads > 0) TorchSharp.torch.set_num_threads(settings.Threads);
        string testFile = File.ReadAllText(testPath);
        string testText = ScoredText(testFile, settings.TestChars, settings.ValidationChars);
        string sealedText = ScoredText(testFile, settings.TestChars, null);
        var ml = new MLContext(settings.Seed);
        string trainText = string.Join("\n", extraPaths.Prepend(trainPath).Select(File.ReadAllText));
        string coverage = settings.Cutoffs is { } cutoffs ? Coverage(trainText, cutoffs) : "";
        if (coverage.Length > 0) AnsiConsole.WriteLine(coverage);
        var train = ml.Data.LoadFromEnumerable(new[] { new SmallLanguageModel.Document { Text = trainText } });
        var test = ml.Data.LoadFromEnumerable(new[] { new SmallLanguageModel.Document { Text = testText } });
        var sealedTest = settings.SealedTest is null ? null
            : ml.Data.LoadFromEnumerable(new[] { new SmallLanguageModel.Document { Text = sealedText } });
        var curveText = settings.EvalEvery == 0 ? null : ml.Data.LoadFromEnumerable(new[]
            { new SmallLanguageModel.Document { Text = ScoredText(testFile, settings.TestChars, settings.ValidationChars ?? DefaultValidationChars) } });
        var data = new Data(train, test, curveText);
        var sealedRuns = new List<Run>();
        string machineBefore = Perf.MachineFigures.Measure();
        List<Run> runs;
        if (settings.CalibrationSteps > 0) runs = CalibratedEqualTime(ml, data, settings, cancellationToken);
        else
        {
            runs = [.. settings.Kinds.Select(kind => Train(ml, kind, "equal steps", settings.Steps, data, settings, cancellationToken, sealedTest, sealedRuns))];
            if (settings.SealedTest is { } sealedFile && settings.ValidationChars is not null)
                File.WriteAllText(sealedFile, Markdown(sealedRuns, settings, sealedText.Length, validation: false) + Environment.NewLine);
            if (runs.Count == 2 && settings.ValidationChars is null)
                runs.Add(EqualTime(ml, runs, data, settings, cancellationToken));
        }
        string markdown = Markdown(runs, settings, testText.Length, settings.ValidationChars is not null) + coverage + Environment.NewLine
            + string.Concat(runs.Select(r => r.Buckets))
            + "before: " + machineBefore + Environment.NewLine + "after: " + Perf.MachineFigures.Measure() + Environment.NewLine
            + (settings.EvalEvery > 0 ? Environment.NewLine + Curves(runs, settings) : "");
        AnsiConsole.WriteLine(markdown);
        if (settings.Output is { } output) File.WriteAllText(output, markdown);
        return 0;
    }

    /// <summary>The training text, the scored text and the learning curves' tuning text (null without --eval-every).</summary>
    private sealed record Data(IDataView Train, IDataView Test, IDataView? Curve);

    /// <summary>The curves' table, and their plot written to --curve-plot.</summary>
    private static string Curves(List<Run> runs, Settings settings)
    {
        var curves = runs.Where(r => r.Curve.Count > 0).Select(r => new TokenCurveReport.Curve($"{r.Label}, {r.Steps} steps ({r.Budget})", r.Curve)).ToList();
        string plot = settings.CurvePlot ?? Path.Combine(BenchmarkPaths.RepoRoot, "artifacts", "benchmarks", "lm-tokens-curves.png");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(plot))!);
        TokenCurveReport.SavePlot(curves, plot, $"GPT-2 tokens, d = {settings.Width}, {settings.Layers} blocks, seed {settings.Seed}", Unit(settings));
        return TokenCurveReport.Markdown(curves, Unit(settings)) + $"Plot: {plot}" + Environment.NewLine;
    }

    /// <summary>"s" on the wall clock, "CPU s" on the CPU clock.</summary>
    private static string Unit(Settings settings) => settings.CpuClock ? "CPU s" : "s";

    /// <summary>--calibration-steps: Dense for --steps (the budget), a calibration run of MemoryFormer, then MemoryFormer for the steps that fit.</summary>
    private static List<Run> CalibratedEqualTime(MLContext ml, Data data, Settings settings, CancellationToken cancellationToken)
    {
        var dense = Train(ml, TransformerKind.Dense, "reference", settings.Steps, data, settings, cancellationToken);
        var calibration = Train(ml, TransformerKind.MemoryFormer, "calibration", settings.CalibrationSteps, data with { Curve = null },
            settings, cancellationToken, evaluate: false);
        int skip = Math.Min(20, settings.CalibrationSteps / 2);
        var timing = StepTiming.FromProgress(calibration.Reports!, skip);
        if (settings.CpuClock) timing = timing with { StartupSeconds = 0 };   // Dense's first interval was charged at its step rate too
        int steps = timing.StepsThatFit(dense.Seconds);
        var mf = Train(ml, TransformerKind.MemoryFormer, $"equal time ({dense.Seconds:F0} {Unit(settings)} of Dense, calibrated on {settings.CalibrationSteps} steps)",
            steps, data, settings, cancellationToken);
        return [dense, calibration with { Reports = null }, mf];
    }

    /// <summary>The words naming the --extra-train files after the training file in the table's note, or nothing.</summary>
    private static string Extra(Settings settings) =>
        settings.ExtraTrainFiles.Length == 0 ? "" : " followed by " + string.Join(" and ", settings.ExtraTrainFiles);

    /// <summary>The share of the training text's GPT-2 tokens that fall in the adaptive head and in each tail cluster.</summary>
    private static string Coverage(string trainText, int[] cutoffs)
    {
        var ids = new Gpt2Tokenizer().Encode(trainText);
        var counts = ids.GroupBy(id => id).Select(g => (long)g.Count()).OrderByDescending(c => c).ToArray();  // by rank
        int[] bounds = [0, .. cutoffs, int.MaxValue];
        var shares = bounds.Zip(bounds.Skip(1)).Select(b => counts.Skip(b.First).Take(b.Second - b.First).Sum() / (double)ids.Count);
        var parts = shares.Select((s, i) => FormattableString.Invariant($"{(i == 0 ? "head" : $"tail {i}")} {100 * s:F1} %"));
        return FormattableString.Invariant($"Coverage on the training text ({ids.Count:N0} tokens, {counts.Length:N0} distinct): ") +
            string.Join(", ", parts) + Environment.NewLine;
    }

    /// <summary>The scored text: the first --test-chars of the test file, or in tuning mode the --validation-chars after them.</summary>
    private static string ScoredText(string testFile, int? testChars, int? validationChars)
    {
        if (validationChars is not { } v)
            return testChars is { } n && n < testFile.Length ? testFile[..n] : testFile;
        int start = testChars ?? DefaultValidationOffset;
        if (start + v > testFile.Length) throw new ArgumentException($"--validation-chars: the test file has only {testFile.Length:N0} characters.");
        return testFile.Substring(start, v);
    }

    /// <summary>Equal wall-clock: the faster model gets the steps that fit in the slower one's training time (steps × slower s / faster s).</summary>
    private static Run EqualTime(MLContext ml, List<Run> runs, Data data, Settings settings, CancellationToken cancellationToken)
    {
        var (fast, slow) = runs[0].Seconds <= runs[1].Seconds ? (runs[0], runs[1]) : (runs[1], runs[0]);
        int steps = StepTiming.FromRun(settings.Steps, fast.Seconds).StepsThatFit(slow.Seconds);
        string budget = $"equal time ({slow.Seconds:F0} s of {slow.Label})";
        return steps == settings.Steps ? fast with { Budget = budget + ", same steps: not retrained" }   // training is seeded: a rerun repeats it
            : Train(ml, fast.Kind, budget, steps, data, settings, cancellationToken);
    }

    private static Run Train(MLContext ml, TransformerKind kind, string budget, int steps, Data data, Settings settings,
        CancellationToken cancellationToken, IDataView? sealedTest = null, List<Run>? sealedRuns = null, bool evaluate = true)
    {
        string label = Label(kind);
        AnsiConsole.MarkupLineInterpolated($"training {label} for {steps} steps ({budget}) ...");
        var progress = new Progress();
        var recipe = SmallLanguageModel.Options(kind, settings.Width, settings.Layers, settings.Batch, steps, TextTokenizerKind.Gpt2, cancellationToken);
        var options = LanguageModelOverrides.Apply(recipe, kind == TransformerKind.Dense ? settings.DenseSet : settings.MemoryFormerSet, settings.Cutoffs);
        options.Seed = settings.Seed;
        options.ReportEvery = 10;
        options.Progress = progress;
        string lastLog = "";
        options.Log = line => lastLog = line;                                 // its last line ends with the training's bucket summary
        if (data.Curve is { } curve) (options.ValidationSet, options.ValidateEvery) = (curve, settings.EvalEvery);
        using var model = ml.Text.MemoryFormer(options).Fit(data.Train);
        var reports = settings.CpuClock ? progress.OnCpuClock() : progress.Reports;
        double[] wall = TrainingClock.TrainingSeconds(progress.Reports);      // the curve's validation passes taken out
        double[] seconds = settings.CpuClock ? progress.CpuTrainingSeconds() : wall;
        var last = progress.Reports[^1];
        var points = reports.Select((r, i) => (r, i)).Where(p => p.r.ValidationLoss is not null)
            .Select(p => new TokenCurveReport.Point(p.r.Step, seconds[p.i], p.r.ValidationLoss!.Value, progress.Loads[p.i])).ToList();
        var metrics = evaluate ? model.Evaluate(data.Test, cancellationToken: cancellationToken) : null;
        var run = new Run(kind, label, budget, steps, seconds[^1] * steps / last.Step, wall[^1] * steps / last.Step, last.ItemsPerSecond * last.Elapsed.TotalSeconds / seconds[^1],
            metrics, model.TrainingResult!.LossHistory.TakeLast(20).Average(), progress.Loads.Average(), points) { Reports = reports };
        if (settings.BucketUsage && kind == TransformerKind.MemoryFormer)
        {
            run = run with { Buckets = BucketHealth.Markdown(model, data.Curve ?? data.Test, data.Curve is null ? $"the {Scored(settings)} text" : "the tuning text") + Environment.NewLine
                + $"Last training log line: {lastLog}" + Environment.NewLine + Environment.NewLine };
            AnsiConsole.WriteLine(run.Buckets);
        }
        AnsiConsole.MarkupLineInterpolated($"  {run.Seconds:F0} s ({settings.Clock}), {run.WallSeconds:F0} s wall, load {run.Load:F1}, {Scored(settings)} perplexity {metrics?.Perplexity:F1}");
        if (sealedTest is not null)
            sealedRuns!.Add(run with { Test = model.Evaluate(sealedTest, cancellationToken: cancellationToken) });
        return run;
    }

    private static string Label(TransformerKind kind) => kind == TransformerKind.Dense ? "Dense" : "MemoryFormer";

    private static string Scored(Settings settings) => settings.ValidationChars is null ? "test" : "validation";

    private static string Markdown(List<Run> runs, Settings settings, int testChars, bool validation)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        string scored = validation ? "validation" : "test";
        string clock = settings.CpuClock ? "train CPU s" : "train s";
        text.AppendLine($"| model | budget | steps | {clock} | wall s | {(settings.CpuClock ? "tokens per CPU s" : "train tokens/s")} | load (mean) | **{scored} perplexity (per GPT-2 token)** | {scored} nats/token | {scored} bits/byte | train loss (last 20 steps) |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in runs)
        {
            string scores = r.Test is { } t ? string.Create(c, $"**{t.Perplexity:F1}** | {t.LossNatsPerToken:F4} | {t.BitsPerByte:F4}") : "— | — | —";
            text.AppendLine(c, $"| {r.Label} | {r.Budget} | {r.Steps} | {r.Seconds:F0} | {r.WallSeconds:F0} | {r.TokensPerSecond:F0} | {r.Load:F1} | {scores} | {r.TrainLoss:F3} |");
        }
        text.AppendLine();
        int start = settings.TestChars ?? DefaultValidationOffset;
        string where = !validation ? string.Create(c, $"the first {testChars:N0} characters")
            : string.Create(c, $"characters {start:N0} to {start + testChars:N0} (tuning text, not the reported test text)");
        text.AppendLine(c, $"GPT-2 tokens, d = {settings.Width}, {settings.Layers} blocks, 4 heads, τ = 8, T = {ContextLength}, batch {settings.Batch}, " +
            $"seed {settings.Seed}; trained on wikitext2_valid.txt (the train split is not in ../shared/data){Extra(settings)}, scored on {where} " +
            $"of wikitext2_test.txt ({runs.First(r => r.Test is not null).Test!.Tokens:N0} tokens, non-overlapping {ContextLength}-token windows).");
        text.AppendLine(settings.Cutoffs is { } cutoffs
            ? $"Output head: adaptive softmax (both models), cutoffs {string.Join(", ", cutoffs)} over tokens ranked by their count in the training text."
            : "Output head: the full 50,304-way softmax.");
        foreach (var (name, set) in new[] { ("MemoryFormer", settings.MemoryFormerSet), ("Dense", settings.DenseSet) })
            if (!string.IsNullOrWhiteSpace(set)) text.AppendLine($"{name} settings on top of the recipe: `{set}`.");
        text.AppendLine($"torch threads {TorchSharp.torch.get_num_threads()}.");
        return text.ToString();
    }

    /// <summary>Keeps the progress reports, the 1-minute load average and the process's CPU seconds (since this object was made) at each.</summary>
    private sealed class Progress : IProgress<TrainingProgress>
    {
        private readonly TimeSpan cpuAtStart = Environment.CpuUsage.TotalTime;
        private readonly List<double> cpuSeconds = [];

        public List<TrainingProgress> Reports { get; } = [];

        public List<double> Loads { get; } = [];

        public void Report(TrainingProgress value)
        {
            Reports.Add(value);
            Loads.Add(Perf.Timing.LoadAverage());
            cpuSeconds.Add((Environment.CpuUsage.TotalTime - cpuAtStart).TotalSeconds);
            if (value.ValidationLoss is { } loss)                             // a long run's curve survives it being stopped
                Console.WriteLine(FormattableString.Invariant(
                    $"  step {value.Step}: validation {loss:F4} after {TrainingClock.TrainingSeconds(Reports)[^1]:F1} s wall, {CpuTrainingSeconds()[^1]:F1} CPU s of training, load {Loads[^1]:F1}"));
        }

        /// <summary>Training CPU seconds at each report: tokenising and validations taken out (<see cref="TrainingClock"/>).</summary>
        public double[] CpuTrainingSeconds() => TrainingClock.TrainingSeconds([.. OnCpuClock().Select(r =>
            new TrainingClock.Mark(r.Step, r.Elapsed.TotalSeconds, r.ValidationLoss is not null))], setupInFirstInterval: true);

        /// <summary>The reports with <see cref="TrainingProgress.Elapsed"/> on the CPU clock (tokenising included in the first).</summary>
        public List<TrainingProgress> OnCpuClock() => [.. Reports.Select((r, i) => r with { Elapsed = TimeSpan.FromSeconds(cpuSeconds[i]) })];
    }
}
