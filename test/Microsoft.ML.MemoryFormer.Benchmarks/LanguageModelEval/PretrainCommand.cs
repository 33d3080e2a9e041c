using System.ComponentModel;
using System.Globalization;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>
/// <c>bench pretrain</c>: trains a small GPT-2-token MemoryFormer language model on the English text in
/// <c>../shared/data</c> (WikiText-2's validation split, Moby Dick and Tiny Shakespeare; <c>wikitext2_test.txt</c> is held
/// out and scored at the end) and saves it as a standalone checkpoint that the text classifiers fine-tune from
/// (<see cref="MemoryFormerTextClassificationOptions.PretrainedCheckpointPath"/>, <c>bench classification --checkpoint</c>).
/// Shows a progress bar; Ctrl+C cancels and writes nothing.
/// </summary>
internal sealed class PretrainCommand : Command<PretrainCommand.Settings>
{
    /// <summary>Command-line settings.</summary>
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--steps <N>")]
        [Description("Training steps. Default 400 (about one pass over the corpus).")]
        public int Steps { get; init; } = 400;

        [CommandOption("--width <D>")]
        [Description("Model width d (τ = 8, 4 heads). Default 128, the text classifier's default width.")]
        public int Width { get; init; } = 128;

        [CommandOption("--layers <N>")]
        [Description("Blocks. Default 2, the text classifier's default depth.")]
        public int Layers { get; init; } = 2;

        [CommandOption("--batch <N>")]
        [Description("Windows of --context tokens per step. Default 16.")]
        public int Batch { get; init; } = 16;

        [CommandOption("--context <T>")]
        [Description("Context length T: the longest window a classifier fine-tuned from the checkpoint can read. Default 128.")]
        public int Context { get; init; } = 128;

        [CommandOption("--test-chars <N>")]
        [Description("Score only the first N characters of wikitext2_test.txt (default: all of it).")]
        public int? TestChars { get; init; }

        [CommandOption("--output <FILE>")]
        [Description("Checkpoint file written at the end. Default pretrained-lm.mfckpt.")]
        public string Output { get; init; } = "pretrained-lm.mfckpt";

        [CommandOption("--init <FILE>")]
        [Description("Go on training this checkpoint (continued or task-adaptive pretraining) instead of random weights; its architecture, context and tokenizer replace --width, --layers and --context.")]
        public string? Init { get; init; }

        [CommandOption("--corpus <LIST>")]
        [Description("Comma-separated training text: 'text' (wikitext2_valid + moby_dick + tinyshakespeare, the default) and/or classification sets " +
            "(banking77, clinc150, sms_spam, detox) whose TRAINING-split texts are read, one document per row, labels unused.")]
        public string Corpus { get; init; } = PretrainCorpus.General;

        [CommandOption("--eval-texts <LIST>")]
        [Description("Comma-separated classification sets whose TEST-split texts are also scored (perplexity only), before and after training.")]
        public string? EvalTexts { get; init; }

        public override ValidationResult Validate() =>
            Steps > 0 && Width > 0 && Layers > 0 && Batch > 0 && Context >= 2 && TestChars is null or > 0
                ? ValidationResult.Success() : ValidationResult.Error("--steps, --width, --layers, --batch and --test-chars must be positive, --context at least 2");
    }

    /// <summary>The training texts, relative to <c>../shared/data</c>.</summary>
    internal static readonly string[] Corpus =
        [Path.Combine("lm-eval", "wikitext2_valid.txt"), Path.Combine("text", "moby_dick.txt"), Path.Combine("text", "tinyshakespeare.txt")];

    /// <inheritdoc />
    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var parts = settings.Corpus.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var evalSets = settings.EvalTexts?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) ?? [];
        string testPath = BenchmarkPaths.SharedData(Path.Combine("lm-eval", "wikitext2_test.txt"));
        var (documents, absent) = PretrainCorpus.Training(parts);
        var evalTexts = evalSets.Select(name => (name, PretrainCorpus.Test(name))).ToArray();
        absent ??= !File.Exists(testPath) ? testPath : evalTexts.Select(e => e.Item2.Missing).FirstOrDefault(m => m is not null);
        if (documents is null || absent is not null)
        {
            AnsiConsole.MarkupLineInterpolated($"[yellow]Skipped: {absent} not found (developer data, not part of the repository).[/]");
            return 0;
        }
        string testText = File.ReadAllText(testPath);
        if (settings.TestChars is { } n && n < testText.Length) testText = testText[..n];
        var ml = new MLContext(SmallLanguageModel.Seed);
        IDataView Documents(IEnumerable<string> texts) => ml.Data.LoadFromEnumerable(texts.Select(t => new SmallLanguageModel.Document { Text = t }).ToArray());
        var train = Documents(documents);
        var test = Documents([testText]);

        var options = SmallLanguageModel.Options(TransformerKind.MemoryFormer, settings.Width, settings.Layers, settings.Batch, settings.Steps,
            TextTokenizerKind.Gpt2, cancellationToken);
        options.ContextLength = settings.Context;
        options.ReportEvery = 10;
        if (settings.Init is { } init)
        {
            var (initial, tokenizer) = PretrainedCheckpoint.Load(init);
            options.InitialModel = initial;                    // Fit takes it over
            options.Architecture = initial.Config;
            options.ContextLength = initial.Config.ContextLength;
            options.CustomTokenizer = tokenizer;
            foreach (var (name, texts) in evalTexts)
                AnsiConsole.WriteLine(Describe($"{Path.GetFileName(init)} on the {name} test texts",
                    LanguageModelEvaluator.Evaluate(initial, tokenizer, texts.Texts!, TorchSharp.torch.CPU, batchSize: 16, cancellationToken)));
        }
        AnsiConsole.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Corpus {settings.Corpus}: {documents.Count:N0} documents, {documents.Sum(d => (long)d.Length):N0} characters"));
        var reports = new List<TrainingProgress>();
        bool interactive = AnsiConsole.Profile.Capabilities.Interactive;
        AnsiConsole.WriteLine($"Pretraining a MemoryFormer LM: d = {settings.Width}, {settings.Layers} blocks, T = {settings.Context}, " +
            $"batch {settings.Batch}, {settings.Steps} steps, GPT-2 tokens, on {settings.Corpus}" + (settings.Init is null ? "" : $", from {settings.Init}"));
        MemoryFormerLanguageModelTransformer? model = null;
        try
        {
            if (interactive)
                AnsiConsole.Progress().Start(ctx =>
                {
                    var task = ctx.AddTask("pretraining", maxValue: settings.Steps);
                    options.Progress = new Recorder(p =>
                    {
                        reports.Add(p);
                        task.Value = p.Step;
                        task.Description = string.Create(CultureInfo.InvariantCulture, $"loss {p.Loss:F3}, {p.ItemsPerSecond:F0} tokens/s");
                    });
                    model = ml.Text.MemoryFormer(options).Fit(train);
                });
            else   // output redirected to a file: a plain line every 50 steps instead of the bar
            {
                options.Progress = new Recorder(p =>
                {
                    reports.Add(p);
                    if (p.Step % 50 == 0 && p.ValidationLoss is null)
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"step {p.Step}/{p.TotalSteps}: loss {p.Loss:F3}, {p.ItemsPerSecond:F0} tokens/s, {p.Elapsed.TotalSeconds:F0} s"));
                });
                model = ml.Text.MemoryFormer(options).Fit(train);
            }
            var trained = reports.Last(r => r.ValidationLoss is null);
            AnsiConsole.MarkupLineInterpolated($"Trained in {trained.Elapsed.TotalSeconds:F0} s ({trained.ItemsPerSecond:F0} tokens/s at the end); scoring wikitext2_test.txt ...");
            var metrics = model!.Evaluate(test, cancellationToken: cancellationToken);
            model.Save(settings.Output);
            AnsiConsole.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wikitext2_test ({testText.Length:N0} characters, {metrics.Tokens:N0} tokens): perplexity {metrics.Perplexity:F1} per GPT-2 token, " +
                $"{metrics.BitsPerByte:F4} bits/byte; training loss over the last 20 steps {model.TrainingResult!.LossHistory.TakeLast(20).Average():F3}"));
            foreach (var (name, texts) in evalTexts)
                AnsiConsole.WriteLine(Describe($"trained model on the {name} test texts", model.Evaluate(Documents(texts.Texts!), cancellationToken: cancellationToken)));
            AnsiConsole.WriteLine($"Checkpoint: {Path.GetFullPath(settings.Output)} (use it as PretrainedCheckpointPath, or bench classification --checkpoint)");
            AnsiConsole.WriteLine(Perf.MachineFigures.Measure());
            return 0;
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine("[yellow]Cancelled: no checkpoint written.[/]");
            return 2;
        }
        finally
        {
            model?.Dispose();
        }
    }

    private static string Describe(string what, LanguageModelMetrics metrics) =>
        string.Create(CultureInfo.InvariantCulture, $"{what} ({metrics.Tokens:N0} tokens): perplexity {metrics.Perplexity:F1}, {metrics.BitsPerByte:F4} bits/byte");

    private sealed class Recorder(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
