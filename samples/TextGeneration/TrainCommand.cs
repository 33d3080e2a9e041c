using System.ComponentModel;
using Microsoft.ML;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace TextGeneration;

/// <summary>Load data → train with a progress bar → evaluate → save → load → generate and stream.</summary>
public sealed class TrainCommand : AsyncCommand<TrainCommand.Settings>
{
    /// <summary>Command-line options.</summary>
    public sealed class Settings : CommandSettings
    {
        /// <summary>A UTF-8 text file to train on instead of Moby Dick.</summary>
        [CommandOption("--data <PATH>")]
        [Description("UTF-8 text file to train on (default: Moby Dick, fetched with npm into the cache folder)")]
        public string? Data { get; init; }

        /// <summary>Optimizer steps.</summary>
        [CommandOption("--steps <N>")]
        [Description("Optimizer steps of 16 × 128 bytes (default: as many as fit in --minutes)")]
        public int? Steps { get; init; }

        /// <summary>Train for about this many minutes instead of a step count.</summary>
        [CommandOption("--minutes <M>")]
        [Description("Train for about this many minutes, measuring the step time first (default 4; overrides --steps)")]
        public double? Minutes { get; init; }

        /// <summary>Where the corpus is cached.</summary>
        [CommandOption("--cache <DIR>")]
        [Description("Cache folder for the corpus (default ~/.cache/memoryformer)")]
        public string Cache { get; init; } =
            Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "memoryformer");

        /// <summary>Where the model and the loss curve go.</summary>
        [CommandOption("--output <DIR>")]
        [Description("Folder for the saved model and the loss-curve PNG (default artifacts/text-generation)")]
        public string Output { get; init; } = Path.Combine("artifacts", "text-generation");

        /// <summary>The prompt to continue at the end.</summary>
        [CommandOption("--prompt <TEXT>")]
        [Description("Text to continue after training (default \"It was the whale that\")")]
        public string Prompt { get; init; } = "It was the whale that";

        /// <inheritdoc />
        public override ValidationResult Validate() =>
            Steps is <= 0 ? ValidationResult.Error("--steps must be positive")
            : Minutes is <= 0 ? ValidationResult.Error("--minutes must be positive")
            : Data is not null && !File.Exists(Data) ? ValidationResult.Error($"--data file '{Data}' not found")
            : ValidationResult.Success();
    }

    /// <inheritdoc />
    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        // 1. Data: the book (or your file), cut into documents of up to 32 KB (at least ~20 of them); the last 5% is held out for evaluation.
        string path = settings.Data ?? AnsiConsole.Status().Start("Fetching Moby Dick with npm…", _ => MobyDickCorpus.EnsureFile(settings.Cache));
        string text = await File.ReadAllTextAsync(path, cancellationToken);
        var documents = TextGenerationModel.ToDocuments(text, chunkBytes: Math.Clamp(text.Length / 20, 256, 32_768));
        int heldOut = Math.Max(1, documents.Count / 20);
        var mlContext = new MLContext(seed: 1);
        IDataView trainData = mlContext.Data.LoadFromEnumerable(documents[..^heldOut]);
        IDataView testData = mlContext.Data.LoadFromEnumerable(documents[^heldOut..]);
        AnsiConsole.MarkupLine($"[grey]{Path.GetFileName(path)}: {documents.Count} documents, {heldOut} held out[/]");

        // 2. Train. The progress callback moves a Spectre.Console progress bar.
        // A time budget by default, so the demo takes a few minutes on any machine; --steps makes runs repeatable.
        int steps = settings.Steps is { } fixedSteps && settings.Minutes is null ? fixedSteps : StepsFor(mlContext, trainData, settings.Minutes ?? 4);
        var model = Train(mlContext, trainData, testData, steps, cancellationToken);
        using var owned = model;

        // 3. Evaluate on the held-out text: bits per byte compare across tokenizers; perplexity is per token.
        var metrics = mlContext.Text.EvaluateLanguageModel(model, testData);
        var table = new Table().AddColumns("held-out metric", "value");
        table.AddRow("loss (nats/token)", $"{metrics.LossNatsPerToken:F3}");
        table.AddRow("perplexity", $"{metrics.Perplexity:F2}");
        table.AddRow("bits per byte", $"{metrics.BitsPerByte:F3}");
        AnsiConsole.Write(table);

        // Per token: where the model is most surprised in a held-out passage (ScoreTokens: each token's log-probability
        // given the text before it; surprisal = −log₂ p in bits).
        string passage = documents[^heldOut].Text[..Math.Min(400, documents[^heldOut].Text.Length)];
        var tokens = model.ScoreTokens(passage, cancellationToken).Tokens;
        var ends = new int[tokens.Count];
        for (int i = 0, at = 0; i < tokens.Count; i++) ends[i] = at += tokens[i].Text.Length;
        var surprises = new Table().AddColumns("most surprising token (in [[ ]])", "bits");
        foreach (int i in Enumerable.Range(0, tokens.Count).Where(i => tokens[i].Text.Trim().Length > 0)
                     .OrderBy(i => tokens[i].LogProbability).Take(5))
        {
            int start = ends[i] - tokens[i].Text.Length, from = Math.Max(0, start - 30);
            string shown = $"…{passage[from..start]}[{tokens[i].Text}]".ReplaceLineEndings(" ");
            surprises.AddRow(Markup.Escape(shown), $"{-tokens[i].LogProbability / Math.Log(2):F1}");
        }
        AnsiConsole.Write(surprises);

        // 4. Save the model (an ML.NET zip) and the loss curve.
        Directory.CreateDirectory(settings.Output);
        TextGenerationModel.ModelPath = Path.GetFullPath(Path.Combine(settings.Output, "TextGenerationModel.mlnet"));
        mlContext.Model.SaveAtomically(model, trainData.Schema, TextGenerationModel.ModelPath);
        string chart = Path.Combine(settings.Output, "loss.png");
        LossChart.Save(model.TrainingResult!.LossHistory, chart);
        AnsiConsole.MarkupLine($"[grey]Saved {TextGenerationModel.ModelPath} and {chart}[/]");

        // 5. Consume the saved model as an app would: Predict loads it into a fresh MLContext on first use.
        var output = TextGenerationModel.Predict(new ModelInput { Prompt = settings.Prompt });
        AnsiConsole.Write(new Panel(Markup.Escape(settings.Prompt + output.GeneratedText)).Header("Predict (loaded model)"));

        // 6. Stream: pieces appear as soon as they are decoded.
        AnsiConsole.MarkupLine("[bold]Streaming:[/]");
        AnsiConsole.Write(settings.Prompt);
        await foreach (var piece in model.GenerateStreaming(settings.Prompt, cancellationToken: cancellationToken))
            AnsiConsole.Write(piece);
        AnsiConsole.WriteLine();
        return 0;
    }

    private static Microsoft.ML.MemoryFormer.MLNet.MemoryFormerLanguageModelTransformer Train(MLContext mlContext, IDataView trainData,
        IDataView testData, int steps, CancellationToken cancellationToken) =>
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: steps);
                var progress = new SynchronousProgress(p =>
                {
                    task.Value = p.Step;
                    task.Description = $"loss {p.Loss:F3}" + (p.ValidationLoss is { } v ? $" (validation {v:F3})" : "") +
                        $" · {p.ItemsPerSecond:F0} bytes/s";
                });
                return TextGenerationModel.RetrainModel(mlContext, trainData, steps, testData, progress, cancellationToken);
            });

    // Times a few steps, then picks the step count that fills the budget (the learning-rate schedule needs it up front).
    // The first steps are slow (allocation, optimizer state, code the JIT has not optimised yet: measured over steps 5-10
    // the estimate was 2-3x the real step time, and the run ended in about a third of its budget), so the time between
    // the reports at steps 20 and 40 counts (step 41 ends the probe with a validation pass, which stays out of it).
    private static int StepsFor(MLContext mlContext, IDataView trainData, double minutes)
    {
        var reports = new List<TrainingProgress>();
        using var probe = AnsiConsole.Status().Start("Measuring the step time…",
            _ => TextGenerationModel.RetrainModel(mlContext, trainData, steps: 80, progress: new SynchronousProgress(reports.Add)));
        // Steps 50-80 only: before them the JIT is still optimising the loop, and the training times both places its kernels
        // can fork in three probes of 8 steps (half of them the slower way; the third ends at step 50, the fourth starts
        // after step 82). Steps 20-40 read 0.06 s where the training then ran at ≈ 0.043 s.
        reports.RemoveAll(r => r.ValidationLoss is not null || r.Step < 50);
        double secondsPerStep = (reports[^1].Elapsed - reports[0].Elapsed).TotalSeconds / (reports[^1].Step - reports[0].Step);
        int steps = Math.Max(10, (int)(minutes * 60 * 0.9 / secondsPerStep));
        AnsiConsole.MarkupLine($"[grey]{secondsPerStep:F2} s per step → {steps} steps in about {minutes} min[/]");
        return steps;
    }

    private sealed class SynchronousProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
