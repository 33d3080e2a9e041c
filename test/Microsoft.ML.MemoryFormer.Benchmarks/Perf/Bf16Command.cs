using System.ComponentModel;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf bf16</c> (issue 16, item 4): the accuracy cost of <see cref="LanguageModel.UseInferencePrecision"/> (bf16 and
/// int8) on small byte-level models trained on tinyshakespeare: bits/byte of held-out text through the fused decode step
/// in fp32 and in each reduced precision, and how much of the greedy text stays the same, for MemoryFormer (the head; with
/// int8 also the head and the tables) and dense (every matrix).
/// </summary>
internal sealed class Bf16Command : Command<Bf16Command.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--steps")]
        [Description("Training steps per model. Default 300 (60 with --quick).")]
        public int? Steps { get; init; }
    }

    private static readonly System.Globalization.CultureInfo Invariant = System.Globalization.CultureInfo.InvariantCulture;

    private const int Prompts = 8, PromptBytes = 32, NewTokens = 64, EvalBytes = 20_000;

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string path = BenchmarkPaths.SharedData(Path.Combine("text", "tinyshakespeare.txt"));
        if (!File.Exists(path))
        {
            Console.Error.WriteLine($"perf bf16 skipped: {path} is absent (the tinyshakespeare text of the shared data folder).");
            return 0;
        }
        string text = File.ReadAllText(path);
        int split = text.Length * 9 / 10;
        string train = text[..split], held = text[split..Math.Min(text.Length, split + EvalBytes)];
        int steps = settings.Steps ?? (settings.Quick ? 60 : 300);
        var table = new PerfTable("bf16", $"bf16 and int8 inference weights: accuracy on tinyshakespeare (byte-level, d=128, 2 layers, {steps} steps)",
            "model", "reduced weights", "bits/byte fp32", "bits/byte reduced", "Δ bits/byte", "greedy tokens equal", "mean tokens before first difference");
        foreach (var kind in new[] { TransformerKind.MemoryFormer, TransformerKind.Dense })
        {
            var tokenizer = new ByteLevelTokenizer();
            var config = new MemoryFormerConfig
            {
                Kind = kind, VocabularySize = tokenizer.ModelVocabularySize, Width = 128, Layers = 2, Heads = 2, ContextLength = 64, BitsPerChunk = 8,
            };
            var plan = new LanguageModelTrainingPlan(config, tokenizer, 16, 0.0, 1, CPU,
                (_, _) => new TrainingOptions { MaxSteps = steps, Seed = 1, WarmupSteps = Math.Min(50, steps / 5) });
            var (model, _) = LanguageModelTrainer.Train([train], [held], plan);
            using (model)
            {
                model.eval();
                double fp32 = DecodeBitsPerByte(model, tokenizer, held);
                var fp32Texts = Greedy(model, tokenizer, held);
                bool dense = kind == TransformerKind.Dense;
                var settingsToTry = dense
                    ? new (InferencePrecision Precision, bool Tables, string Label)[] { (InferencePrecision.BFloat16, false, "bf16 head + all matrices"), (InferencePrecision.Int8, false, "int8 head + all matrices") }
                    : [(InferencePrecision.BFloat16, false, "bf16 head"), (InferencePrecision.BFloat16, true, "bf16 head + tables"),
                        (InferencePrecision.Int8, false, "int8 head"), (InferencePrecision.Int8, true, "int8 head + tables")];
                foreach (var (precision, tables, label) in settingsToTry)
                {
                    model.UseTableCopies = tables;
                    model.UseInferencePrecision(precision);
                    double reduced = DecodeBitsPerByte(model, tokenizer, held);
                    var reducedTexts = Greedy(model, tokenizer, held);
                    model.UseInferencePrecision(InferencePrecision.Float32);
                    model.UseTableCopies = true;
                    int total = fp32Texts.Sum(t => t.Length);
                    int equal = fp32Texts.Zip(reducedTexts).Sum(p => p.First.Zip(p.Second).Count(q => q.First == q.Second));
                    double prefix = fp32Texts.Zip(reducedTexts).Average(p => p.First.Zip(p.Second).TakeWhile(q => q.First == q.Second).Count());
                    table.AddRow(dense ? "dense" : "MemoryFormer", label, fp32.ToString("F4", Invariant), reduced.ToString("F4", Invariant),
                        (reduced - fp32).ToString("+0.00000;-0.00000;0", Invariant), $"{100.0 * equal / total:F1}% of {total}", prefix);
                }
            }
        }
        table.AddNote($"bits/byte: {held.Length:N0} held-out bytes (the text's last tenth), windows of the context length decoded token by token through the fused step (FusedDecodeStep), fp32 then each reduced precision (LanguageModel.UseInferencePrecision)");
        table.AddNote($"greedy: {Prompts} prompts of {PromptBytes} held-out bytes, {NewTokens} new tokens each, with the KV cache; position-wise agreement with the fp32 text");
        table.AddNote("a short run on a loaded machine: timings are not reported here, only accuracy");
        table.Publish(settings.Output);
        return 0;
    }

    /// <summary>Bits per byte of <paramref name="text"/> from the fused decode step's logits, a fresh cache per context window.</summary>
    private static double DecodeBitsPerByte(LanguageModel model, ITextTokenizer tokenizer, string text)
    {
        using var noGrad = no_grad();
        var ids = tokenizer.Encode(text);
        int window = model.Config.ContextLength;
        double nats = 0;
        for (int start = 0; start + 1 < ids.Count; start += window)
        {
            var caches = model.Backbone.NewCaches(1, CPU);
            var step = FusedDecodeStep.TryCreate(model, caches) ?? throw new InvalidOperationException("The fused decode step does not apply to this model.");
            int end = Math.Min(ids.Count - 1, start + window);
            for (int t = start; t < end; t++)
            {
                using var scope = NewDisposeScope();
                var logProbabilities = step.Logits(ids[t]).log_softmax(-1);
                nats -= logProbabilities[0, ids[t + 1]].item<float>();
            }
            foreach (var c in caches)
                c.Dispose();
        }
        return nats / Math.Log(2) / tokenizer.CountBytes(text);
    }

    private static int[][] Greedy(LanguageModel model, ITextTokenizer tokenizer, string text)
    {
        var generator = new TextGenerator(model, tokenizer, CPU);
        var options = new GenerationOptions { Temperature = 0, MaxNewTokens = NewTokens };
        return Enumerable.Range(0, Prompts)
            .Select(p => generator.GenerateIds(tokenizer.Encode(text.Substring(p * text.Length / Prompts, PromptBytes)).ToArray(), options, useCache: true))
            .ToArray();
    }
}
