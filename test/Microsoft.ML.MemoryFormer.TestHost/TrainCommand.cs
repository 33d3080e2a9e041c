using System.ComponentModel;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console.Cli;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.TestHost;

/// <summary>
/// Trains a tiny language model through the public ML.NET API with one torch thread and a checkpoint file, printing
/// "STEP n" after every step, "CHECKPOINT n" after each periodic checkpoint and "RESUMED k" when it resumed; at the
/// end it writes the loss history (exact bits) and the SHA-256 of the saved model to the output file.
/// </summary>
internal sealed partial class TrainCommand : Command<TrainCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--checkpoint <PATH>")]
        [Description("Checkpoint file (resumed from when it exists)")]
        public string Checkpoint { get; init; } = "";

        [CommandOption("--output <PATH>")]
        [Description("Result file: the losses and the model digest")]
        public string Output { get; init; } = "";

        [CommandOption("--steps <N>")]
        public int Steps { get; init; } = 30;

        [CommandOption("--every <N>")]
        [Description("Checkpoint every N steps")]
        public int Every { get; init; } = 5;

        [CommandOption("--step-delay-ms <MS>")]
        [Description("Sleep after each step, so that a parent can kill the run mid-training")]
        public int StepDelayMs { get; init; }

        [CommandOption("--no-retain-heap")]
        [Description("KernelSettings.RetainTrainingHeap off: leave glibc's heap trimming as it is")]
        public bool NoRetainHeap { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        torch.set_num_threads(1);
        Runtime.KernelSettings.Current.RetainTrainingHeap = !settings.NoRetainHeap;
        var mlContext = new MLContext(seed: 1);
        mlContext.Log += (_, e) =>
        {
            if (ResumedLine().Match(e.Message) is { Success: true } m) Console.WriteLine($"RESUMED {m.Groups[1].Value}");
        };
        var options = new MemoryFormerLanguageModelEstimator.Options
        {
            Architecture = MemoryFormerConfig.Nano with { Dropout = 0.1 }, // dropout: the resumed run must replay its masks
            ContextLength = 16, BatchSize = 4, MaxSteps = settings.Steps, WarmupSteps = 3, LearningRate = 3e-3,
            TableLearningRate = 1e-2, ValidationFraction = 0.1, ValidateEvery = 10, ReportEvery = 1, Seed = 7,
            CheckpointPath = settings.Checkpoint, CheckpointEverySteps = settings.Every,
            Progress = new StepReport(p =>
            {
                Console.WriteLine($"STEP {p.Step}");
                // the loop writes a due checkpoint before it reports the step
                if (p.Step % settings.Every == 0 && p.Step < p.TotalSteps) Console.WriteLine($"CHECKPOINT {p.Step}");
                if (settings.StepDelayMs > 0) Thread.Sleep(settings.StepDelayMs);
            }),
        };
        var documents = Enumerable.Range(0, 60).Select(i => new Document($"the {Animals[i % 5]} number {i} jumps over the {Things[i % 7]}."));
        using var model = mlContext.Text.MemoryFormer(options).Fit(mlContext.Data.LoadFromEnumerable(documents));
        string saved = settings.Output + ".model";
        model.Save(saved);
        var lines = model.TrainingResult!.LossHistory
            .Select((loss, i) => $"loss {i + 1} {BitConverter.DoubleToInt64Bits(loss):X16} {loss.ToString("R", CultureInfo.InvariantCulture)}")
            .Append($"model {Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(saved)))}");
        File.WriteAllLines(settings.Output, lines);
        File.Delete(saved);
        Console.WriteLine($"HEAP RETAINED {Runtime.TrainingHeap.Applied}");         // whether this run set glibc's heap parameters
        Console.WriteLine("DONE");
        return 0;
    }

    private static readonly string[] Animals = ["fox", "dog", "cat", "owl", "eel"];
    private static readonly string[] Things = ["fence", "moon", "river", "wall", "log", "hill", "gate"];

    [GeneratedRegex(@"resumed from step (\d+)")]
    private static partial Regex ResumedLine();

    private sealed record Document(string Text);

    /// <summary>Reports on the training thread (<see cref="Progress{T}"/> would post to the thread pool).</summary>
    private sealed class StepReport(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
