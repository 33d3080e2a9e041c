using System.ComponentModel;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf train-profile</c>: where one training step of <c>perf train</c>'s models goes, part by part, MemoryFormer
/// beside dense. Each part (embedding, norms, Q/K/V, rotary, attention, W_O, FFN and, for MemoryFormer, its two Memory
/// Layers and inner LayerNorm, head + loss) runs forward + backward on its own with the step's shapes and a fixed
/// upstream gradient, on the trained model's own modules (the training loop's in-place table gradients attached), and is
/// multiplied by how often a step runs it; the whole step and its optimizer share are timed as in <c>perf train</c>. The
/// step minus the parts is what the parts do not see: residual adds, dropout, reshapes, autograd bookkeeping, and the
/// page faults of a whole step's fresh native memory (counted in their own row).
/// </summary>
/// <remarks>Before each part the optimizer arms this step's table update (<c>ModelOptimizer.ZeroGrad(step)</c>, as the
/// training loop does), so a MemoryFormer part's backward applies AdamW to its tables in place exactly as in a step (the
/// moments' traffic included); before 2026-12-05 07:00 the parts wrote the table gradient instead, which a step never
/// does, and the update's extra traffic showed up only in "step − parts".</remarks>
internal sealed class TrainProfileCommand : Command<TrainProfileCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("The shape of perf train to profile: 256 (L=4 ctx128×16) or 512 (L=6 ctx256×8). Default 256.")]
        [DefaultValue(256)]
        public int Width { get; init; } = 256;

        [CommandOption("--fp32-moments")]
        [Description("Give MemoryFormer fp32 table moments (TrainingOptions.TableMomentPrecision Float32, the default before 2026-12-05), as perf train's mf-fp32; default: the library's (bf16).")]
        public bool Fp32Moments { get; init; }

        [CommandOption("--rounds")]
        [Description("Interleaved timing rounds after one warm-up round (median). Default 7; --quick: 3.")]
        public int? Rounds { get; init; }

        public override Spectre.Console.ValidationResult Validate() => TrainCommand.ValidateWidth(Width);
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        var s = TrainCommand.ShapeOf(settings.Width);
        string machine = MachineFigures.Measure(settings);
        using var dense = new Profiled(s, TransformerKind.Dense);
        using var mf = new Profiled(s, TransformerKind.MemoryFormer, settings.Fp32Moments ? MomentPrecision.Float32 : null);
        var parts = dense.Parts.Select(p => p.Name).Union(mf.Parts.Select(p => p.Name)).ToArray();
        var bodies = new List<Action>();
        var slots = new List<(string Name, int Model)>();
        foreach (var (model, index) in new[] { (dense, 0), (mf, 1) })
        {
            foreach (var p in model.Parts)
            {
                bodies.Add(p.Body);
                slots.Add((p.Name, index));
            }
        }
        int rounds = settings.Rounds ?? (settings.Quick ? 3 : 7);
        var medians = Timing.Interleave(bodies, rounds);
        double Ms(string name, int model)
        {
            int i = slots.IndexOf((name, model));
            if (i < 0) return double.NaN;
            var part = (model == 0 ? dense : mf).Parts.First(p => p.Name == name);
            return medians[i] * part.PerStep;
        }
        int Count(string name) => dense.Parts.Concat(mf.Parts).First(p => p.Name == name).PerStep;

        var table = new PerfTable($"train-profile-d{s.Width}",
            $"One training step, part by part, d={s.Width} L={s.Layers} ctx{s.Context}×{s.Batch} (ms per step, median of {rounds} interleaved rounds)",
            "part", "× per step", "dense ms", "MF ms", "dense − MF ms");
        foreach (var name in parts)
        {
            double d = Ms(name, 0), m = Ms(name, 1);
            table.AddRow(name, Count(name), Cell(d), Cell(m), double.IsNaN(d) || double.IsNaN(m) ? "" : Cell(d - m));
        }
        // The step's own split (forward, backward, optimizer) from the timed whole steps.
        foreach (var (name, pick) in new (string, Func<Profiled, double>)[]
                 {
                     ("  of the step: forward (loss)", p => Timing.Median(p.Forward)),
                     ("  of the step: backward", p => Timing.Median(p.Backward)),
                     ("  of the step: clip + AdamW", p => Timing.Median(p.Optimizer)),
                 })
            table.AddRow(name, 1, Cell(pick(dense)), Cell(pick(mf)), Cell(pick(dense) - pick(mf)));
        double Attributed(int model, Profiled p) => p.Parts.Where(x => x.TopLevel).Sum(x => Ms(x.Name, model))
            + Timing.Median(p.Optimizer);
        double stepDense = Ms(Profiled.StepName, 0), stepMf = Ms(Profiled.StepName, 1);
        double restDense = stepDense - Attributed(0, dense), restMf = stepMf - Attributed(1, mf);
        table.AddRow("step − (embedding + blocks + final norm + head/loss + clip/AdamW)", 1, Cell(restDense), Cell(restMf), Cell(restDense - restMf));
        table.AddRow("  minor page faults in a whole step (fresh native memory; median)", 1, Cell(Timing.Median(dense.Faults)), Cell(Timing.Median(mf.Faults)),
            Cell(Timing.Median(dense.Faults) - Timing.Median(mf.Faults)));
        table.AddRow("tokens/s (whole step)", "", Cell(s.Context * s.Batch / stepDense * 1000), Cell(s.Context * s.Batch / stepMf * 1000),
            (stepDense / stepMf).ToString("F2", System.Globalization.CultureInfo.InvariantCulture) + "× MF ÷ dense");
        table.AddNote("each part = forward + backward alone on the step's shapes with a fixed upstream gradient (the model's own modules, " +
            "the training loop's table gradients attached and this step's table update armed before each part, so MemoryFormer's backward " +
            "also runs the PreviousStep table update as in a step), " +
            "× how often one step runs it; indented rows are pieces of the row above them; 'one block' includes its norms, residual " +
            "adds and dropout; the step's forward/backward/clip split is measured inside the timed whole steps");
        table.AddNote(machine);
        table.Publish(settings.Output);
        return 0;
    }

    private static string Cell(double ms) => double.IsNaN(ms) ? "" : ms.ToString("F1", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A part of the step: its name, how often a step runs it, a timed body (fwd + bwd), and whether it is one
    /// of the top-level parts that should add up to the step.</summary>
    private sealed record Part(string Name, int PerStep, Action Body, bool TopLevel);

    /// <summary>One model of <c>perf train</c>, with its optimizer, data and the parts to time.</summary>
    private sealed class Profiled : IDisposable
    {
        public const string StepName = "whole step (fwd + bwd + clip + AdamW)";
        private readonly LanguageModel model;
        private readonly LanguageModelTask task;
        private readonly ModelOptimizer optimizer;
        private readonly List<Tensor> keep = [];
        private int step;

        public Profiled((int Width, int Layers, int Heads, int Context, int Batch) s, TransformerKind kind,
            MomentPrecision? moments = null)
        {
            (model, task) = TrainCommand.ByteModel(s, kind);
            optimizer = new ModelOptimizer(model, new TrainingOptions { MaxSteps = 1000, WarmupSteps = 10, TableMomentPrecision = moments });
            model.train();
            for (int i = 0; i < 2; i++)
                Step();                                                            // moments allocated, tables touched
            Forward.Clear();
            Backward.Clear();
            Optimizer.Clear();
            Faults.Clear();

            long b = s.Batch, t = s.Context, d = s.Width, heads = s.Heads, hd = d / heads, n = b * t;
            var backbone = model.Backbone;
            var block = backbone.Blocks[0];
            var tokens = Keep(randint(0, 256, [b, t]));
            var x = Keep(randn(b, t, d).requires_grad_(true));                     // [B, T, d]
            var flat = Keep(randn(n, d).requires_grad_(true));                      // [N, d]
            var g = Keep(randn(b, t, d));
            var gFlat = Keep(randn(n, d));
            var gHeads = Keep(randn(b, heads, t, hd));
            var qh = Keep(randn(b, heads, t, hd).requires_grad_(true));
            var kh = Keep(randn(b, heads, t, hd).requires_grad_(true));
            var vh = Keep(randn(b, heads, t, hd).requires_grad_(true));
            var targets = Keep(randint(0, 256, [n]));
            var causal = Keep(ones(t, t, ScalarType.Bool).triu(1));                // true above the diagonal: masked
            int layers = s.Layers;
            var parts = new List<Part>
            {
                new(StepName, 1, () => Step(), false),
                new("embedding", 1, Scoped(() => backbone.Embedding.call(tokens).backward([g])), true),
                new("one block (all of it)", layers, Scoped(() => block.Forward(x, AttentionContext.CausalLm, null).backward([g])), true),
                new("  the same block with the managed causal attention (opt-in)", layers, Scoped(() => Runtime.KernelSettings.Current.With(
                    k => k.FusedCausalAttention = true, () => block.Forward(x, AttentionContext.CausalLm, null).backward([g]))), false),
                new("  norm before attention / FFN (each)", 2 * layers, Scoped(() => block.AttentionNorm.call(x).backward([g])), false),
                new("    the same norm as torch ops (before 2026-12-05)", 2 * layers,
                    Scoped(() => ((RmsNorm)block.AttentionNorm).Reference(x).backward([g])), false),
                new("  Q/K/V", layers, Scoped(() =>
                {
                    var (q, k, v) = block.Attention.Qkv.call(flat);
                    autograd.backward([q, k, v], [gFlat, gFlat, gFlat]);
                }), false),
                new("  rotary on Q and K, split into heads (each)", 2 * layers,
                    Scoped(() => block.Attention.Rotary.SplitAndApply(x, (int)heads, 0).backward([gHeads])), false),
                new("    the same as torch ops (before 2026-12-05)", 2 * layers, Scoped(() => Runtime.KernelSettings.Current.With(
                    k => k.FusedNormAndRotary = false, () => block.Attention.Rotary.SplitAndApply(x, (int)heads, 0).backward([gHeads]))), false),
                new("  causal scaled_dot_product_attention (libtorch; before 2026-12-05 evening)", layers,
                    Scoped(() => F.scaled_dot_product_attention(qh, kh, vh, null, 0.0, true).backward([gHeads])), false),
                new("    the managed causal attention (FusedCausalAttention, opt-in)", layers,
                    Scoped(() => Layers.Kernels.FusedCausalAttention.Apply(qh, kh, vh).backward([gHeads])), false),
                new("    the same as explicit matmuls + masked softmax (for comparison)", layers, Scoped(() =>
                {
                    var scores = qh.matmul(kh.transpose(-2, -1)).mul_(1.0 / Math.Sqrt(hd));   // [B, H, T, T]
                    var probs = F.softmax(scores.masked_fill(causal, double.NegativeInfinity), -1);
                    probs.matmul(vh).backward([gHeads]);
                }), false),
            };
            if (block.Attention.Output is { } output)
                parts.Add(new("  W_O (dense only)", layers, Scoped(() => output.call(flat).backward([gFlat])), false));
            parts.Add(new("  FFN (GELU MLP / Memory Block)", layers, Scoped(() => block.Ffn.call(flat).backward([gFlat])), false));
            if (block.Ffn is MemoryBlock memory)
            {
                var hidden = Keep(randn(n, memory.Expand.OutputWidth).requires_grad_(true));
                var gHidden = Keep(randn(n, memory.Expand.OutputWidth));
                parts.Add(new("    ML₁ d → K·(τ+2) (hash + gather)", layers, Scoped(() => memory.Expand.call(flat).backward([gHidden])), false));
                parts.Add(new("    LayerNorm K·(τ+2)", layers, Scoped(() => memory.Norm.call(hidden).backward([gHidden])), false));
                parts.Add(new("    ML₂ K·(τ+2) → d (hash + gather)", layers, Scoped(() => memory.Project.call(hidden).backward([gFlat])), false));
                parts.Add(new("    ML₂'s sign hash alone", layers, Scoped(() => memory.Project.Hash(hidden).Weights.sum().backward()), false));
            }
            parts.Add(new("final norm", 1, Scoped(() => backbone.FinalNorm.call(x).backward([g])), true));
            parts.Add(new("head + cross-entropy", 1, Scoped(() =>
                F.cross_entropy(model.Head.call(flat), targets).backward()), true));
            Parts = parts;
        }

        /// <summary>The parts, the whole step first.</summary>
        public IReadOnlyList<Part> Parts { get; }

        /// <summary>The whole steps' forward, backward and optimizer milliseconds.</summary>
        public List<double> Forward { get; } = [];

        /// <inheritdoc cref="Forward"/>
        public List<double> Backward { get; } = [];

        /// <inheritdoc cref="Forward"/>
        public List<double> Optimizer { get; } = [];

        /// <summary>The whole steps' minor page faults.</summary>
        public List<double> Faults { get; } = [];

        private void Step()
        {
            long faults = PageFaults.Minor();
            using (var scope = NewDisposeScope())
                StepIn();
            Faults.Add(PageFaults.Minor() - faults);
        }

        private void StepIn()
        {
            long start = Stopwatch.GetTimestamp();
            optimizer.ZeroGrad(step);
            var (loss, _) = task.Loss(step);
            double forward = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            start = Stopwatch.GetTimestamp();
            loss.backward();
            double backward = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            start = Stopwatch.GetTimestamp();
            optimizer.Step(step);
            Optimizer.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            Forward.Add(forward);
            Backward.Add(backward);
            step++;
        }

        private Action Scoped(Action body) => () =>
        {
            foreach (var t in keep.Where(t => t.requires_grad))
                t.grad = null;
            optimizer.ZeroGrad(step);                                          // arms the tables' update, as a step does
            using var scope = NewDisposeScope();
            body();
        };

        private Tensor Keep(Tensor t)
        {
            keep.Add(t);
            return t;
        }

        public void Dispose()
        {
            foreach (var t in keep)
                t.Dispose();
            optimizer.Dispose();
            model.Dispose();
        }
    }
}
