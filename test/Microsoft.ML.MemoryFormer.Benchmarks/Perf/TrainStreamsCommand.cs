using System.ComponentModel;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf train-streams</c>: a training step on two single-threaded streams (data parallel, <c>TrainingOptions.DataParallelStreams</c>)
/// against today's step, for <c>perf train</c>'s shapes, MemoryFormer and dense, interleaved in one process: (a) the whole batch with
/// the process's threads; (b) half the batch's forward + backward alone on one stream (libtorch threads 1); (c) both halves at once on
/// two streams, then the tables' gradient sum with their AdamW step (<c>ModelOptimizer.CombineStreams</c>) and the optimizer's step.
/// </summary>
internal sealed class TrainStreamsCommand : Command<TrainStreamsCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("Only the shape of this width (256 or 512). Default: both.")]
        public int? Width { get; init; }

        [CommandOption("--models <LIST>")]
        [Description("Comma-separated subset of dense, mf. Default: dense,mf.")]
        [DefaultValue("dense,mf")]
        public string Models { get; init; } = "dense,mf";

        [CommandOption("--check")]
        [Description("Also check the streams' step against the whole batch's: from the same seeded model, one step each, the largest parameter difference.")]
        public bool Check { get; init; }

        [CommandOption("--warmup-seconds <S>")]
        [Description("Untimed rounds go on until this many seconds have passed (JIT tiering). Default 10.")]
        [DefaultValue(10.0)]
        public double WarmupSeconds { get; init; } = 10;
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        var kinds = settings.Models.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(m => m == "dense" ? TransformerKind.Dense : m == "mf" ? TransformerKind.MemoryFormer : throw new ArgumentException($"--models: {m}")).ToArray();
        string machine = MachineFigures.Measure(settings);
        var table = new PerfTable("train-streams", "Training step on two single-threaded streams (data parallel) vs the whole batch",
            ["shape", "model", "mode", "step ms", "fwd+bwd ms", "stream 0 / 1 ms", "stream 0 fwd / bwd ms", "streams' thread CPU ÷ wall", "combine ms", "combine CPU ms",
                "optimizer ms", "CPU ms/step", "RSS MB after"]);
        using var streams = new TrainingStreams();
        int[] streamThreads = new int[TrainingStreams.Count];
        streams.Run(i => streamThreads[i] = TorchSharp.torch.get_num_threads());
        table.AddNote($"libtorch threads: caller {TorchSharp.torch.get_num_threads()}, streams {string.Join(", ", streamThreads)} (torch.get_num_threads() on each thread)");
        foreach (var s in new[] { 256, 512 }.Where(w => settings.Width is null || settings.Width == w).Select(TrainCommand.ShapeOf))
        {
            if (settings.Check)
                foreach (var kind in kinds)
                    table.AddNote(CheckStep(s, kind, streams));
            var trainees = kinds.Select(k => new Trainee(s, k, streams)).ToArray();
            var modes = new[] { Mode.Whole, Mode.WholeSeparate, Mode.HalfAlone, Mode.Streams, Mode.StreamsOwner };
            var items = trainees.SelectMany(t => modes.Where(m => m != Mode.StreamsOwner || t.Kind == TransformerKind.MemoryFormer).Select(m => (Trainee: t, Mode: m))).ToArray();
            int warmup = settings.Quick ? 1 : 2, rounds = settings.Quick ? 2 : s.Width >= 512 ? 5 : 8, step = 0;
            var warming = Stopwatch.StartNew();
            for (int w = 0; w < warmup || warming.Elapsed.TotalSeconds < settings.WarmupSeconds; w++, step++)
                foreach (var (t, m) in items)
                    t.Run(m, step, timed: false);
            for (int round = 0; round < rounds; round++, step++)
                foreach (int i in Timing.Rotation(items.Length, round))
                    items[i].Trainee.Run(items[i].Mode, step, timed: true);
            string shape = $"d={s.Width} L={s.Layers} ctx{s.Context}×{s.Batch}";
            foreach (var (t, m) in items)
                table.AddRow(t.Row(shape, m));
            var ms = items.ToDictionary(x => (x.Trainee.Kind, x.Mode), x => x.Trainee.StepMs(x.Mode));
            if (kinds.Length == 2)
            {
                double Ratio(Mode dense, Mode mf) => ms[(TransformerKind.Dense, dense)] / ms[(TransformerKind.MemoryFormer, mf)];
                table.AddNote($"{shape}: MF ÷ dense (medians' ratio) whole/whole {Ratio(Mode.Whole, Mode.Whole):F2}×, streams/streams {Ratio(Mode.Streams, Mode.Streams):F2}×, " +
                    $"MF streams vs dense whole {Ratio(Mode.Whole, Mode.Streams):F2}×, MF whole vs dense streams {Ratio(Mode.Streams, Mode.Whole):F2}×");
            }
            foreach (var t in trainees)
                table.AddNote($"{shape} {t.Kind}: whole ÷ streams {t.StepMs(Mode.Whole) / t.StepMs(Mode.Streams):F2}× (> 1: streams faster); " +
                    $"streams' fwd+bwd ÷ one half alone {t.Median(Mode.Streams, x => x.ForwardBackward) / t.Median(Mode.HalfAlone, x => x.ForwardBackward):F2} (1: two graphs at full speed side by side, 2: serialised)" +
                    (t.Kind == TransformerKind.MemoryFormer ? $"; whole ÷ streams with the owner-stream update {t.StepMs(Mode.Whole) / t.StepMs(Mode.StreamsOwner):F2}×" : ""));
            foreach (var t in trainees.Where(t => t.TableBytes > 0))
                table.AddNote($"{shape} {t.Kind}: tables {t.TableBytes / 1048576.0:F0} MiB fp32, so the two streams' gradient buffers hold {2 * t.TableBytes / 1048576.0:F0} MiB more " +
                    "than the whole batch's step (which fuses the update into its row pass and writes no gradient)");
            foreach (var t in trainees)
                t.Dispose();
        }
        table.AddNote("one process, every (model, mode) timed once a round, each round starting one item later; medians over rounds. whole = today's step " +
            "(ZeroGrad, loss, backward, clip + AdamW) with --threads; whole, table AdamW after the backward = the same with KernelSettings.FusedTableUpdate off (same bits), so its optimizer column is the tables' AdamW pass alone; half alone = half the batch's forward + backward on stream 0 alone (libtorch threads 1, " +
            "the other stream idle), no optimizer; streams = both halves at once on two dedicated threads (libtorch threads 1 each), then the tables' " +
            "streams summed in stream order with their AdamW step (combine), then clip + the other groups' AdamW (optimizer). CPU = the process's CPU time a step, all threads. " +
            "RSS = the process's resident memory after the model's last timed step of that mode.");
        table.AddNote(machine);
        table.Publish(settings.Output);
        return 0;
    }

    /// <summary>Step 0's gradients of the whole batch and of the two streams (summed by <c>CombineStreams</c>), each from the same seeded
    /// model with the Global clipping rule (so the tables' sums are written as their gradients, not applied): the largest difference of any
    /// parameter's gradient, relative to that gradient's largest entry, and the losses.</summary>
    private static string CheckStep((int Width, int Layers, int Heads, int Context, int Batch) s, TransformerKind kind, TrainingStreams streams)
    {
        using var whole = new Trainee(s, kind, streams, TableGradientClipping.Global);
        using var streamed = new Trainee(s, kind, streams, TableGradientClipping.Global);
        var (wholeLoss, a) = whole.Gradients(Mode.Whole);
        var (streamedLoss, b) = streamed.Gradients(Mode.Streams);
        string owner = "";
        if (kind == TransformerKind.MemoryFormer)
        {
            // The owner-stream update applied against the one-pass sum: two models from the same seed, one step each, parameters compared.
            using var onePass = new Trainee(s, kind, streams);
            using var owned = new Trainee(s, kind, streams);
            onePass.Run(Mode.Streams, 0, timed: false);
            owned.Run(Mode.StreamsOwner, 0, timed: false);
            bool same = onePass.ParameterBytes().SequenceEqual(owned.ParameterBytes());
            owner = $"; one step with the owner-stream update {(same ? "byte-identical to" : "DIFFERENT from")} the one-pass sum";
        }
        double worst = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double top = a[i].abs().max().item<float>();
            worst = Math.Max(worst, a[i].sub(b[i]).abs().max().item<float>() / Math.Max(top, 1e-30));
        }
        return $"check d={s.Width} {kind}: step 0's loss whole {wholeLoss:F6}, two streams {streamedLoss:F6}; gradients of {a.Length} parameters, " +
            $"largest |whole − streams| ÷ largest |whole| of a parameter {worst:G3}{owner}";
    }

    private enum Mode { Whole, WholeSeparate, HalfAlone, Streams, StreamsOwner }

    private sealed record Sample(double Step, double ForwardBackward, double Stream0, double Stream1, double Forward0, double Backward0, double BusyShare,
        double Combine, double CombineCpu, double Optimizer, double Cpu, double RssMb);

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec time);

    /// <summary>CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), ms.</summary>
    private static double ThreadCpuMs()
    {
        ClockGetTime(3, out var t);
        return (t.Seconds * 1e3) + (t.Nanoseconds / 1e6);
    }

    private sealed class Trainee : IDisposable
    {
        private readonly LanguageModel model;
        private readonly LanguageModelTask task;
        private readonly ModelOptimizer optimizer;
        private readonly TrainingStreams streams;
        private readonly Dictionary<Mode, List<Sample>> samples = new() { [Mode.Whole] = [], [Mode.WholeSeparate] = [], [Mode.HalfAlone] = [], [Mode.Streams] = [], [Mode.StreamsOwner] = [] };

        public Trainee((int Width, int Layers, int Heads, int Context, int Batch) s, TransformerKind kind, TrainingStreams streams,
            TableGradientClipping? clipping = null)
        {
            Kind = kind;
            this.streams = streams;
            (model, task) = TrainCommand.ByteModel(s, kind);
            optimizer = new ModelOptimizer(model, new TrainingOptions { MaxSteps = 1000, WarmupSteps = 10, TableGradientClipping = clipping });
            TableBytes = 4.0 * ParameterGroups.Of(model).Tables.Sum(p => p.numel());
            model.train();
        }

        public TransformerKind Kind { get; }

        /// <summary>Every parameter's bytes, in order.</summary>
        public byte[] ParameterBytes() => model.parameters().SelectMany(p => p.detach().contiguous().bytes.ToArray()).ToArray();

        /// <summary>Step 0's loss and every parameter's gradient (cloned), whole batch or two streams (<see cref="CheckStep"/>).</summary>
        public (double Loss, Tensor[] Gradients) Gradients(Mode mode)
        {
            optimizer.ZeroGrad(0);
            double loss;
            if (mode == Mode.Whole)
            {
                using var scope = NewDisposeScope();
                var (l, _) = task.Loss(0);
                l.backward();
                loss = l.item<float>();
            }
            else
            {
                var parts = new double[2];
                streams.Run(i =>
                {
                    using var scope = NewDisposeScope();
                    var (l, _) = task.PartLoss(0, i, 2);
                    l.backward();
                    parts[i] = l.item<float>();
                });
                optimizer.CombineStreams(2);
                loss = parts[0] + parts[1];
            }
            return (loss, model.parameters().Select(p => p.grad!.clone()).ToArray());
        }

        /// <summary>The tables' fp32 bytes (0 for dense).</summary>
        public double TableBytes { get; }

        public double Median(Mode mode, Func<Sample, double> value) => Timing.Median(samples[mode].Select(value));

        public double StepMs(Mode mode) => Median(mode, x => x.Step);

        public object[] Row(string shape, Mode mode) =>
        [
            shape, Kind == TransformerKind.Dense ? "dense" : "MemoryFormer", mode switch { Mode.Whole => "whole batch", Mode.WholeSeparate => "whole batch, table AdamW after the backward", Mode.HalfAlone => "half alone, 1 thread", Mode.StreamsOwner => "two streams, owner stream updates each table", _ => "two streams" },
            StepMs(mode), Median(mode, x => x.ForwardBackward),
            mode is Mode.Whole or Mode.WholeSeparate ? "" : $"{Median(mode, x => x.Stream0):F1} / {(mode is Mode.Streams or Mode.StreamsOwner ? Median(mode, x => x.Stream1).ToString("F1") : "—")}",
            mode is Mode.Whole or Mode.WholeSeparate ? "" : $"{Median(mode, x => x.Forward0):F1} / {Median(mode, x => x.Backward0):F1}",
            mode is Mode.Whole or Mode.WholeSeparate ? "" : Median(mode, x => x.BusyShare).ToString("F2"),
            mode is Mode.Streams or Mode.StreamsOwner ? Median(mode, x => x.Combine) : "", mode is Mode.Streams or Mode.StreamsOwner ? Median(mode, x => x.CombineCpu) : "",
            mode == Mode.HalfAlone ? "" : Median(mode, x => x.Optimizer),
            Median(mode, x => x.Cpu), samples[mode][^1].RssMb,
        ];

        public void Run(Mode mode, int step, bool timed)
        {
            if (mode == Mode.WholeSeparate)
            {
                Runtime.KernelSettings.Current.With(k => k.FusedTableUpdate = false, () => RunOnce(Mode.WholeSeparate, step, timed));
                return;
            }
            if (mode == Mode.StreamsOwner)
            {
                Layers.Kernels.GradientStream.OwnerUpdates = true;
                try { RunOnce(mode, step, timed); }
                finally { Layers.Kernels.GradientStream.OwnerUpdates = false; }
                return;
            }
            RunOnce(mode, step, timed);
        }

        private void RunOnce(Mode mode, int step, bool timed)
        {
            var cpu = Environment.CpuUsage.TotalTime;
            long start = Stopwatch.GetTimestamp();
            double fb, combine = 0, combineCpu = 0, opt = 0;
            var streamMs = new double[2];
            var streamCpu = new double[2];
            double forward0 = 0, backward0 = 0;
            using (var scope = NewDisposeScope())
            {
                optimizer.ZeroGrad(step);
                if (mode is Mode.Whole or Mode.WholeSeparate)
                {
                    var (loss, _) = task.Loss(step);
                    loss.backward();
                }
                else
                {
                    streams.Run(i =>
                    {
                        if (mode == Mode.HalfAlone && i == 1)
                            return;
                        long t0 = Stopwatch.GetTimestamp();
                        double c0 = ThreadCpuMs();
                        using var inner = NewDisposeScope();
                        var (loss, _) = task.PartLoss(step, i, 2);
                        double forward = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                        loss.backward();
                        streamMs[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                        streamCpu[i] = ThreadCpuMs() - c0;
                        if (i == 0)
                            (forward0, backward0) = (forward, streamMs[i] - forward);
                    });
                }
                fb = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (mode is Mode.Streams or Mode.StreamsOwner)
                {
                    long t1 = Stopwatch.GetTimestamp();
                    var cpu1 = Environment.CpuUsage.TotalTime;
                    optimizer.CombineStreams(2);
                    combine = Stopwatch.GetElapsedTime(t1).TotalMilliseconds;
                    combineCpu = (Environment.CpuUsage.TotalTime - cpu1).TotalMilliseconds;
                }
                if (mode != Mode.HalfAlone)
                {
                    long t2 = Stopwatch.GetTimestamp();
                    optimizer.Step(step);
                    opt = Stopwatch.GetElapsedTime(t2).TotalMilliseconds;
                }
            }
            double total = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (timed)
                samples[mode].Add(new(total, fb, streamMs[0], streamMs[1], forward0, backward0,
                    mode is Mode.Streams or Mode.StreamsOwner ? (streamCpu[0] + streamCpu[1]) / (streamMs[0] + streamMs[1]) : streamCpu[0] / streamMs[0],
                    combine, combineCpu, opt, (Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds, Environment.WorkingSet / 1048576.0));
        }

        public void Dispose()
        {
            optimizer.Dispose();
            model.Dispose();
        }
    }
}
