using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>
/// MemoryFormer vs the dense transformer of the same width and depth as byte-level language models, trained through
/// the public ML.NET API at equal steps: the setup of performance-anchors §4 (d = 256, 4 layers, 4 heads, T = 128,
/// batch 16, AdamW β = (0.9, 0.95), weight decay 0.1, clip 1.0, warm-up then cosine to 10%, seed 1337; MF tables at
/// 3e-3 and dense parameters at 1e-3), with the first 90% of the text for training and the last 10% for validation.
/// </summary>
internal sealed class LanguageModelBenchmark(string dataPath, int steps, int? validationBytes = null)
{
    private sealed class Row
    {
        public string Text { get; set; } = "";
        public string Prompt { get; set; } = "";
    }

    private const int Seed = 1337;
    private TableGradientClipping? tableClipping;
    private const int PromptBytes = 16;
    private const int DecodeTokens = 100;   // 16 + 100 < T = 128: every step is one cached single-token forward

    public LanguageModelBenchmarkReport Run(IReadOnlyList<string> models, CancellationToken cancellationToken)
    {
        string text = File.ReadAllText(dataPath);
        int split = (int)(text.Length * 0.9);
        var ml = new MLContext(Seed);
        var train = ml.Data.LoadFromEnumerable(new[] { new Row { Text = text[..split] } });
        string validationText = validationBytes is { } n && n < text.Length - split ? text.Substring(split, n) : text[split..];
        var validation = ml.Data.LoadFromEnumerable(new[] { new Row { Text = validationText } });
        var results = new List<LanguageModelBenchmarkResult>();
        foreach (var name in models)
        {
            var (kind, moments, label) = name.ToLowerInvariant() switch
            {
                "dense" => (TransformerKind.Dense, MomentPrecision.Float32, "Dense"),
                "mf-bf16" => (TransformerKind.MemoryFormer, MomentPrecision.BFloat16, "MemoryFormer, bf16 table moments"),
                "mf-prevclip" => (TransformerKind.MemoryFormer, MomentPrecision.Float32, "MemoryFormer, PreviousStep clip set explicitly"),
                "mf-global" => (TransformerKind.MemoryFormer, MomentPrecision.Float32, "MemoryFormer, Global clip (separate table update)"),
                _ => (TransformerKind.MemoryFormer, MomentPrecision.Float32, "MemoryFormer"),
            };
            // mf (and mf-bf16) leave the rule at its default, PreviousStep (the table update fused into the backward); mf-prevclip
            // sets it explicitly (the same run), mf-global keeps the old default measurable (issue 16, item 3).
            tableClipping = name.ToLowerInvariant() switch
            {
                "mf-prevclip" => TableGradientClipping.PreviousStep,
                "mf-global" => TableGradientClipping.Global,
                _ => null,
            };
            results.Add(RunOne(ml, kind, moments, label, train, validation, text[split..(split + PromptBytes)], cancellationToken));
        }
        return new LanguageModelBenchmarkReport(Path.GetFileName(dataPath), steps, validationText.Length, results);
    }

    private LanguageModelBenchmarkResult RunOne(MLContext ml, TransformerKind kind, MomentPrecision moments, string label, IDataView train,
        IDataView validation, string decodePrompt, CancellationToken cancellationToken)
    {
        var reports = new List<TrainingProgress>();
        var options = new MemoryFormerLanguageModelEstimator.Options
        {
            Architecture = MemoryFormerConfig.Small256 with { Kind = kind },
            ContextLength = 128, BatchSize = 16, MaxSteps = steps, WarmupSteps = Math.Min(50, steps / 10),
            LearningRate = 1e-3, TableLearningRate = 3e-3, WeightDecay = 0.1, TableMomentPrecision = moments, TableGradientClipping = tableClipping,
            ValidationFraction = 0, ValidateEvery = 0, ReportEvery = 10, Seed = Seed,
            Generation = new GenerationOptions { Temperature = 0.8, MaxNewTokens = 200, Seed = Seed },
            Progress = new Recorder(reports), CancellationToken = cancellationToken,
        };
        LanguageModelBenchmarkResult result = null!;
        AnsiConsole.Progress().Start(ctx =>
        {
            var task = ctx.AddTask(label, maxValue: steps);
            options.Progress = new Recorder(reports, p => { task.Value = p.Step; task.Description = $"{label} loss {p.Loss:F3}"; });
            using var model = ml.Text.MemoryFormer(options).Fit(train);
            task.Description = $"{label}: evaluating";
            var metrics = model.Evaluate(validation);
            // Training speed from the last report before the closing validation pass (validation is not training).
            double tokensPerSecond = reports.Last(r => r.ValidationLoss is null).ItemsPerSecond;
            result = new LanguageModelBenchmarkResult(label, kind, model.Model.parameters().Sum(p => p.numel()),
                metrics, tokensPerSecond, DecodeTokensPerSecond(model, decodePrompt), model.TrainingResult!.LossHistory,
                [model.Generate("ROMEO:\n"), model.Generate("\n")]);
        });
        return result;
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
