using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;
using Microsoft.ML.MemoryFormer.Benchmarks.Perf;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>
/// MemoryFormer vs the dense transformer of the same width and depth as byte-level language models, trained through
/// the public ML.NET API: the setup of performance-anchors §4 (d = 256, 4 layers, 4 heads, T = 128, batch 16, AdamW
/// β = (0.9, 0.95), weight decay 0.1, clip 1.0, warm-up then cosine to 10%, seed 1337; MF tables at 3e-3 and dense
/// parameters at 1e-3), with the first 90% of the text for training and the last 10% for validation. Either at equal
/// steps (<see cref="Run"/>) or at equal wall-clock (<see cref="RunEqualTime"/>).
/// </summary>
internal sealed class LanguageModelBenchmark(string dataPath, int steps, int? validationBytes = null, int width = 256, int layers = 4,
    int seed = LanguageModelBenchmark.DefaultSeed)
{
    private sealed class Row
    {
        public string Text { get; set; } = "";
        public string Prompt { get; set; } = "";
    }

    /// <summary>The seed of every recorded run (model initialisation, batches, sampling).</summary>
    public const int DefaultSeed = 1337;

    /// <summary>The trainer's <c>WeightAveragingDecay</c> for every model (null: off, the default).</summary>
    public double? WeightAveragingDecay { get; init; }

    /// <summary>Whether each MemoryFormer's bucket health on the validation text is measured after its evaluation.</summary>
    public bool BucketUsage { get; init; }

    /// <summary>MemoryFormer's <see cref="MemoryFormerConfig.HashCentering"/> (the dense baseline has no hash).</summary>
    public HashCentering HashCentering { get; init; }

    private const int ReportEvery = 10;
    private const int PromptBytes = 16;
    private const int DecodeTokens = 100;   // 16 + 100 < T = 128: every step is one cached single-token forward

    private sealed record Data(MLContext Ml, IDataView Train, IDataView Validation, int ValidationBytes, string DecodePrompt);

    /// <summary>Every model for <c>steps</c> steps, with decode speed and samples.</summary>
    public LanguageModelBenchmarkReport Run(IReadOnlyList<LanguageModelBenchmarkModel> models, CancellationToken cancellationToken)
    {
        var data = Load();
        var results = models.Select(m => RunOne(data, m, steps, $"{steps} steps", measureDecode: true, cancellationToken)).ToList();
        return new LanguageModelBenchmarkReport(Path.GetFileName(dataPath), steps, data.ValidationBytes, results) { Width = width, Layers = layers, Seed = seed };
    }

    /// <summary>
    /// Equal wall-clock: <paramref name="reference"/> (dense) trains for <c>steps</c> steps and its training time is the
    /// budget; a <paramref name="calibrationSteps"/>-step run of <paramref name="candidate"/> measures its startup and
    /// step time (<see cref="StepTiming.FromProgress"/>), and the candidate then trains, with its own full warm-up and
    /// cosine schedule, for the steps expected to fill the budget. The machine's GEMM and copy figures are measured
    /// before and after.
    /// </summary>
    public LanguageModelBenchmarkReport RunEqualTime(LanguageModelBenchmarkModel reference, LanguageModelBenchmarkModel candidate,
        int calibrationSteps, CancellationToken cancellationToken)
    {
        var data = Load();
        string before = MachineFigures.Measure();
        var referenceRun = RunOne(data, reference, steps, $"reference: {steps} steps", measureDecode: false, cancellationToken);
        var timing = Calibrate(data, candidate, calibrationSteps, cancellationToken);
        int candidateSteps = timing.StepsThatFit(referenceRun.TrainSeconds);
        var candidateRun = RunOne(data, candidate, candidateSteps, $"equal time ({referenceRun.TrainSeconds:F0} s of {reference.Label})",
            measureDecode: false, cancellationToken);
        string after = MachineFigures.Measure();
        string note = $"{candidate.Label}'s steps = the {referenceRun.TrainSeconds:F1} s {reference.Label} trained, less a startup of " +
            $"{timing.StartupSeconds:F1} s, over {timing.SecondsPerStep:F3} s a step, both measured by a {calibrationSteps}-step calibration run " +
            $"of {candidate.Label} (the line through its progress reports from step {ReportEvery} to its last; it predicted " +
            $"{timing.SecondsFor(candidateSteps):F0} s for {candidateSteps} steps, and the run trained {candidateRun.TrainSeconds:F0} s).";
        return new LanguageModelBenchmarkReport(Path.GetFileName(dataPath), steps, data.ValidationBytes, [referenceRun, candidateRun])
        {
            Width = width, Layers = layers, Seed = seed, EqualTimeNote = note, MachineNotes = [$"before: {before}", $"after: {after}"],
        };
    }

    private Data Load()
    {
        string text = File.ReadAllText(dataPath);
        int split = (int)(text.Length * 0.9);
        var ml = new MLContext(seed);
        var train = ml.Data.LoadFromEnumerable(new[] { new Row { Text = text[..split] } });
        string validationText = validationBytes is { } n && n < text.Length - split ? text.Substring(split, n) : text[split..];
        var validation = ml.Data.LoadFromEnumerable(new[] { new Row { Text = validationText } });
        return new Data(ml, train, validation, validationText.Length, text[split..(split + PromptBytes)]);
    }

    private MemoryFormerLanguageModelEstimator.Options Options(LanguageModelBenchmarkModel model, int stepCount, IProgress<TrainingProgress> progress,
        CancellationToken cancellationToken) => new()
    {
        Architecture = MemoryFormerConfig.Small256 with
        {
            Kind = model.Kind, Width = width, Layers = layers,
            HashCentering = model.Kind == TransformerKind.MemoryFormer ? HashCentering : HashCentering.None,
        },
        ContextLength = 128, BatchSize = 16, MaxSteps = stepCount, WarmupSteps = Math.Min(50, stepCount / 10),
        LearningRate = 1e-3, TableLearningRate = 3e-3, WeightDecay = 0.1, TableMomentPrecision = model.Moments, TableGradientClipping = model.Clipping,
        ValidationFraction = 0, ValidateEvery = 0, ReportEvery = ReportEvery, Seed = seed, WeightAveragingDecay = WeightAveragingDecay,
        Generation = new GenerationOptions { Temperature = 0.8, MaxNewTokens = 200, Seed = seed },
        Progress = progress, CancellationToken = cancellationToken,
    };

    private LanguageModelBenchmarkResult RunOne(Data data, LanguageModelBenchmarkModel model, int stepCount, string budget, bool measureDecode,
        CancellationToken cancellationToken)
    {
        var reports = new List<TrainingProgress>();
        LanguageModelBenchmarkResult result = null!;
        AnsiConsole.Progress().Start(ctx =>
        {
            var task = ctx.AddTask(model.Label, maxValue: stepCount);
            var options = Options(model, stepCount, new Recorder(reports, p => { task.Value = p.Step; task.Description = $"{model.Label} loss {p.Loss:F3}"; }),
                cancellationToken);
            using var trained = data.Ml.Text.MemoryFormer(options).Fit(data.Train);
            task.Description = $"{model.Label}: evaluating";
            var metrics = trained.Evaluate(data.Validation);
            // Training speed and time from the last report before the closing validation pass (validation is not training).
            var last = reports.Last(r => r.ValidationLoss is null);
            result = new LanguageModelBenchmarkResult(model.Label, model.Kind, trained.Model.parameters().Sum(p => p.numel()),
                metrics, last.ItemsPerSecond, measureDecode ? DecodeTokensPerSecond(trained, data.DecodePrompt) : null, trained.TrainingResult!.LossHistory,
                measureDecode ? [trained.Generate("ROMEO:\n"), trained.Generate("\n")] : [])
            {
                Steps = stepCount, TrainSeconds = last.Elapsed.TotalSeconds * stepCount / last.Step, Budget = budget, LoadAverage = Timing.LoadAverage(),
                Buckets = BucketUsage && model.Kind == TransformerKind.MemoryFormer ? BucketHealth.Markdown(trained, data.Validation, "the validation text") : "",
            };
        });
        return result;
    }

    // A short run of the model only to time its steps; its weights are thrown away.
    private StepTiming Calibrate(Data data, LanguageModelBenchmarkModel model, int stepCount, CancellationToken cancellationToken)
    {
        var reports = new List<TrainingProgress>();
        AnsiConsole.Progress().Start(ctx =>
        {
            var task = ctx.AddTask($"{model.Label}: timing {stepCount} steps", maxValue: stepCount);
            using var trained = data.Ml.Text.MemoryFormer(Options(model, stepCount, new Recorder(reports, p => task.Value = p.Step), cancellationToken))
                .Fit(data.Train);
        });
        return StepTiming.FromProgress(reports, skipSteps: ReportEvery);
    }

    // Batch-1 greedy decoding with the KV cache: one warm-up, then the median of three timed generations.
    private static double DecodeTokensPerSecond(MemoryFormerLanguageModelTransformer model, string prompt)
    {
        var greedy = new GenerationOptions { Temperature = 0, MaxNewTokens = DecodeTokens };
        model.Generate(prompt, greedy);
        var rates = new List<double>();
        for (int i = 0; i < 3; i++)
        {
            var clock = Stopwatch.StartNew();
            string text = model.Generate(prompt, greedy);
            rates.Add(model.Tokenizer.Encode(text).Count / clock.Elapsed.TotalSeconds);
        }
        return rates.Order().ElementAt(1);
    }

    private sealed class Recorder(List<TrainingProgress> reports, Action<TrainingProgress>? also = null) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            reports.Add(value);
            also?.Invoke(value);
        }
    }
}
