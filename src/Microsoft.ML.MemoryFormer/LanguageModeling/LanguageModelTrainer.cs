using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.LanguageModeling;

/// <summary>
/// Trains a causal language model on documents: tokenize, join with end-of-text, pack into windows of T + 1 tokens,
/// split off validation, then run the one <see cref="TrainingLoop"/> on a <see cref="LanguageModelTask"/>.
/// </summary>
internal static class LanguageModelTrainer
{
    /// <summary>Trains a fresh model, or goes on training <see cref="LanguageModelTrainingPlan.Initial"/>. On failure or
    /// cancellation the model is disposed and nothing is returned.</summary>
    /// <param name="documents">Training documents.</param>
    /// <param name="validationDocuments">Validation documents, or null to split off <see cref="LanguageModelTrainingPlan.ValidationFraction"/>.</param>
    /// <param name="plan">Architecture, tokenizer and optimisation settings.</param>
    /// <param name="progress">Progress callback.</param>
    /// <param name="log">Log lines.</param>
    /// <param name="stopRequested">Polled before every step, next to <paramref name="cancellation"/> (ML.NET's own cancellation).</param>
    /// <param name="cancellation">Stops between steps.</param>
    public static (LanguageModel Model, TrainingResult Result) Train(IEnumerable<string> documents, IEnumerable<string>? validationDocuments,
        LanguageModelTrainingPlan plan, IProgress<TrainingProgress>? progress = null, Action<string>? log = null,
        Func<bool>? stopRequested = null, CancellationToken cancellation = default)
    {
        int t = plan.Config.ContextLength;
        var packer = new DocumentPacker(plan.Tokenizer);
        var all = packer.Pack(documents, t);
        if (all.Count == 0)
            throw new ArgumentException($"The training text holds {all.Tokens.Length} tokens (end-of-text separators included); " +
                $"at least ContextLength + 1 = {t + 1} are needed. Give more text or a smaller ContextLength.", nameof(documents));
        double fraction = plan.ValidationFraction;
        if (validationDocuments is null && fraction > 0 && all.Count < 2)
        {
            // As the other trainers do with too few rows: no hold-out rather than no training window.
            log?.Invoke($"The text makes {all.Count} window of {t + 1} tokens, too few to hold out ValidationFraction {fraction}: " +
                "training on it without validation.");
            fraction = 0;
        }
        var (train, validation) = validationDocuments is null ? all.Split(fraction) : (all, packer.Pack(validationDocuments, t));
        if (validationDocuments is not null && validation.Count == 0)
            throw new ArgumentException($"The validation set holds {validation.Tokens.Length} tokens (end-of-text separators included); " +
                $"at least ContextLength + 1 = {t + 1} are needed for one window. Give more validation text, a smaller ContextLength, " +
                "or no ValidationSet (a ValidationFraction of the training text is held out then).", nameof(validationDocuments));
        var options = plan.Schedule((train.Count + plan.BatchSize - 1) / plan.BatchSize, validation.Count > 0);
        log?.Invoke($"{all.Tokens.Length} tokens → {train.Count} training and {validation.Count} validation windows of " +
            $"{t + 1} tokens; {options.MaxSteps} steps of {plan.BatchSize} windows");

        LanguageModel model;
        using (GeneratorLease.Seeded(plan.Seed))                                   // the initial weights: this run's draws alone
            model = plan.Initial is { } initial ? CheckFits(initial, plan.Config) : new LanguageModel(plan.Config.Validate());
        try
        {
            model.to(plan.Device);
            var trainIds = Ids(train);
            var validationIds = Ids(validation);
            model.AdaptiveHead?.SetTokenCounts(Counts(trainIds, plan.Config.VocabularySize)); // ranks by training-text frequency
            // Hashes the data: only computed when the run checkpoints.
            RunFingerprint DescribeRun() => new RunFingerprint().WithProperties("Architecture", plan.Config.ToJson())
                .With("tokenizer", plan.Tokenizer.Describe().ToJson()).With("batch size", $"{plan.BatchSize}")
                .WithData<long>("training windows", trainIds).WithData<long>("validation windows", validationIds);
            using var trainWindows = tensor(trainIds, [train.Count, t + 1]);                                // [W, T+1]
            using var validationWindows = validation.Count > 0 ? tensor(validationIds, [validation.Count, t + 1]) : null; // [W', T+1]
            ITrainingTask task = new LanguageModelTask(model, trainWindows, validationWindows, plan.BatchSize, plan.Seed, plan.Device);
            if (stopRequested is not null) task = new StoppableTask(task, stopRequested);
            var result = TrainingLoop.Run(model, task, options, progress, log, cancellation, DescribeRun);
            return (model, result);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The initial model when its architecture is the plan's (the run's tokenizer and context length included).</summary>
    private static LanguageModel CheckFits(LanguageModel initial, MemoryFormerConfig config) =>
        initial.Config.ToJson() == config.Validate().ToJson() ? initial
            : throw new ArgumentException($"The initial model's architecture ({initial.Config.ToJson()}) is not the run's ({config.ToJson()}).", nameof(config));

    /// <summary>How often each token id occurs in <paramref name="ids"/> (ids outside the vocabulary are not counted).</summary>
    internal static long[] Counts(long[] ids, int vocabularySize)
    {
        var counts = new long[vocabularySize];
        foreach (var id in ids)
            if ((ulong)id < (ulong)vocabularySize) counts[id]++;
        return counts;
    }

    /// <summary>The windows' ids, row-major [W, T+1].</summary>
    private static long[] Ids(TokenWindows windows)
    {
        int width = windows.ContextLength + 1;
        var ids = new long[windows.Count * width];
        for (int w = 0; w < windows.Count; w++)
        {
            var window = windows.GetWindow(w);
            for (int i = 0; i < width; i++) ids[(w * width) + i] = window[i];
        }
        return ids;
    }
}
