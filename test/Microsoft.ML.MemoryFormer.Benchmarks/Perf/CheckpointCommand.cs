using System.ComponentModel;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf checkpoint</c>: writes and resumes a training checkpoint (weights, both Adam moments, loop state) of a
/// MemoryFormer language model, and reports the file size, the time and how far the process's resident memory rose
/// above what the model and optimizer already hold; with <c>--mlnet</c>, the same for the model saved into and loaded
/// from an ML.NET model zip.
/// </summary>
internal sealed class CheckpointCommand : Command<CheckpointCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("Model width d. Default 512.")]
        [DefaultValue(512)]
        public int Width { get; init; } = 512;

        [CommandOption("--layers")]
        [Description("Number of blocks. Default 6 (the d=512 training shape: 415M table parameters).")]
        [DefaultValue(6)]
        public int Layers { get; init; } = 6;

        [CommandOption("--mlnet")]
        [Description("Measure an ML.NET model zip instead (mlContext.Model.SaveAtomically and LoadChecked of the language-model transformer).")]
        public bool MLNet { get; init; }

        [CommandOption("--folder")]
        [Description("Where the checkpoint is written (and deleted after). Default: the system's temp folder.")]
        public string? Folder { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        var config = new MemoryFormerConfig
        {
            Kind = TransformerKind.MemoryFormer, VocabularySize = 256, Width = settings.Width, Layers = settings.Layers,
            Heads = Math.Max(1, settings.Width / 64), ContextLength = 256,
        };
        string folder = Path.Combine(settings.Folder ?? Path.GetTempPath(), $"mf-checkpoint-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        var options = new TrainingOptions { MaxSteps = 10, CheckpointPath = Path.Combine(folder, "run.ckpt") };
        var table = new PerfTable(settings.MLNet ? "checkpoint-mlnet" : "checkpoint",
            $"{(settings.MLNet ? "ML.NET model zip" : "Training checkpoint")} of a MemoryFormer LM, d={config.Width}, {config.Layers} layers",
            "operation", "parameters (M)", "file GB", "seconds", "peak RSS rise GB", "managed allocated GB", "result");
        try
        {
            if (settings.MLNet)
                MeasureZip(config, folder, table);
            else
                MeasureCheckpoint(config, options, table);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
        table.AddNote("peak RSS rise = highest resident set size sampled every 10 ms during the operation minus the one before it; " +
            "managed allocated = GC.GetTotalAllocatedBytes during it; the resumed model and optimizer are built before timing");
        table.Publish(settings.Output);
        return 0;
    }

    private static void MeasureCheckpoint(MemoryFormerConfig config, TrainingOptions options, PerfTable table)
    {
        random.manual_seed(1);
        using var model = new LanguageModel(config);
        using var optimizer = new ModelOptimizer(model, options);
        double parameters = model.parameters().Sum(p => p.numel()) / 1e6;
        using var state = new TrainingState { Step = 1 };
        state.Losses.Add(5.5);                                         // one completed step
        var checkpoint = new TrainingCheckpoint(model, options, null);
        var (saveSeconds, saveRise, saveAllocated, saveError) = Observe(() => checkpoint.Save(model, optimizer, state, TimeSpan.Zero));
        checkpoint.Dispose();                                                // the resume below takes the checkpoint's lock
        double fileGb = File.Exists(options.CheckpointPath) ? new FileInfo(options.CheckpointPath).Length / 1e9 : double.NaN;
        table.AddRow("save", parameters, fileGb, saveSeconds, saveRise, saveAllocated, saveError ?? "ok");
        if (saveError is null)
        {
            random.manual_seed(2);
            using var resumed = new LanguageModel(config);
            using var resumedOptimizer = new ModelOptimizer(resumed, options);
            TrainingState? loaded = null;
            using var reader = new TrainingCheckpoint(resumed, options, null);
            var (loadSeconds, loadRise, loadAllocated, loadError) = Observe(() => loaded = reader.TryResume(resumed, resumedOptimizer));
            bool same = loadError is null && model.parameters().Zip(resumed.parameters()).All(p => p.First.allclose(p.Second, rtol: 0, atol: 0));
            table.AddRow("resume", parameters, fileGb, loadSeconds, loadRise, loadAllocated,
                loadError ?? (same ? "ok, weights equal" : "WEIGHTS DIFFER"));
            loaded?.Dispose();
        }
    }

    private static void MeasureZip(MemoryFormerConfig config, string folder, PerfTable table)
    {
        random.manual_seed(1);
        var tokenizer = new ByteLevelTokenizer();
        using var model = new MemoryFormerLanguageModelTransformer(new LanguageModel(config with { VocabularySize = tokenizer.VocabularySize }), tokenizer, CPU, new GenerationOptions(),
            new LanguageModelColumns("Text", "Prompt", "GeneratedText"), generationBatchSize: 1, trainingResult: null);
        double parameters = model.Model.parameters().Sum(p => p.numel()) / 1e6;
        var ml = new MLContext(seed: 1);
        string path = Path.Combine(folder, "model.zip");
        var (seconds, rise, allocated, error) = Observe(() => ml.Model.SaveAtomically(model, null, path));
        double fileGb = File.Exists(path) ? new FileInfo(path).Length / 1e9 : double.NaN;
        table.AddRow("mlContext.Model.SaveAtomically", parameters, fileGb, seconds, rise, allocated, error ?? "ok");
        if (error is not null)
            return;
        ITransformer? loaded = null;
        (seconds, rise, allocated, error) = Observe(() => loaded = ml.Model.LoadChecked(path, out _));
        bool same = error is null && loaded is MemoryFormerLanguageModelTransformer lm
            && model.Model.parameters().Zip(lm.Model.parameters()).All(p => p.First.allclose(p.Second, rtol: 0, atol: 0));
        table.AddRow("mlContext.Model.LoadChecked", parameters, fileGb, seconds, rise, allocated, error ?? (same ? "ok, weights equal" : "WEIGHTS DIFFER"));
        (loaded as IDisposable)?.Dispose();
        File.Delete(path);

        // The same model as a standalone file (no compression), for comparison.
        string standalone = Path.Combine(folder, "model.mfa");
        (seconds, rise, allocated, error) = Observe(() => model.Save(standalone));
        fileGb = File.Exists(standalone) ? new FileInfo(standalone).Length / 1e9 : double.NaN;
        table.AddRow("lm.Save(path), standalone", parameters, fileGb, seconds, rise, allocated, error ?? "ok");
        MemoryFormerLanguageModelTransformer? reloaded = null;
        (seconds, rise, allocated, error) = Observe(() => reloaded = MemoryFormerLanguageModelTransformer.Load(standalone));
        same = error is null && model.Model.parameters().Zip(reloaded!.Model.parameters()).All(p => p.First.allclose(p.Second, rtol: 0, atol: 0));
        table.AddRow("MemoryFormerLanguageModelTransformer.Load(path)", parameters, fileGb, seconds, rise, allocated,
            error ?? (same ? "ok, weights equal" : "WEIGHTS DIFFER"));
        reloaded?.Dispose();
    }

    /// <summary>Runs <paramref name="body"/>: seconds, peak resident-set rise (GB), managed bytes allocated (GB), error message.</summary>
    private static (double Seconds, double RiseGb, double AllocatedGb, string? Error) Observe(Action body)
    {
        using var process = Process.GetCurrentProcess();
        GC.Collect();
        process.Refresh();
        long before = process.WorkingSet64, peak = before;
        using var done = new ManualResetEventSlim();
        var sampler = new Thread(() =>
        {
            using var self = Process.GetCurrentProcess();
            while (!done.Wait(10))
            {
                self.Refresh();
                peak = Math.Max(peak, self.WorkingSet64);
            }
        }) { IsBackground = true };
        sampler.Start();
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        var watch = Stopwatch.StartNew();
        string? error = null;
        try
        {
            body();
        }
        catch (Exception e)
        {
            error = $"{e.GetType().Name}: {e.Message}";
        }
        double seconds = watch.Elapsed.TotalSeconds;
        done.Set();
        sampler.Join();
        return (seconds, (peak - before) / 1e9, (GC.GetTotalAllocatedBytes(precise: true) - allocated) / 1e9, error);
    }
}
