using System.ComponentModel;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary><c>perf profile</c>: where a Memory Layer's forward + backward spends its time, phase by phase.</summary>
internal sealed class ProfileCommand : Command<ProfileCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("d. Default 512.")]
        [DefaultValue(512)]
        public int Width { get; init; } = 512;

        [CommandOption("--tokens")]
        [Description("N. Default 4096.")]
        [DefaultValue(4096)]
        public int Tokens { get; init; } = 4096;

        [CommandOption("--bits")]
        [Description("τ, bits per chunk (d must be a multiple). Default 8; the Memory Block's second layer uses τ+2 = 10 on d = K·10.")]
        [DefaultValue(8)]
        public int Bits { get; init; } = 8;

        [CommandOption("--layer-phases")]
        [Description("Only perf layer's MF fwd+bwd and its phases, interleaved, beside Linear's.")]
        public bool LayerPhasesOnly { get; init; }

        [CommandOption("--layer-variants")]
        [Description("Only perf layer's MF fwd+bwd and fwd with the layer round's switches on and off (training-like table copy vs reused copy), interleaved: median ms and the median of per-round ratios, wall and CPU.")]
        public bool LayerVariants { get; init; }

        [CommandOption("--rounds")]
        [Description("Rounds for --layer-variants. Default 15.")]
        [DefaultValue(15)]
        public int Rounds { get; init; } = 15;

        [CommandOption("--out-width")]
        [Description("h, the output width. Default: d.")]
        public int? OutputWidth { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        int d = settings.Width, n = settings.Tokens, bits = settings.Bits, h = settings.OutputWidth ?? d;
        random.manual_seed(7);
        using var layer = new MemoryLayer(d / bits, bits, h, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.02, 0.001);
        using var linear = TorchSharp.torch.nn.Linear(d, h);
        var x = randn(n, d);
        var xg = x.clone().requires_grad_(true);
        var table = new PerfTable($"profile-d{d}-h{h}-t{bits}-n{n}", $"Memory Layer d={d} → h={h}, τ={bits}, N={n}: phases (ms, median)", "phase", "ms");
        void Row(string name, Action body) => table.AddRow(name, Timing.MeasureLooped(body, 2, settings.Quick ? 3 : 7, 100).Median);
        void Scoped(Action body) { using var s = NewDisposeScope(); body(); }
        // Variants compared side by side are timed interleaved (Timing.Interleave).
        void Interleaved(params (string Name, Action Body)[] variants)
        {
            var medians = Timing.Interleave(variants.Select(v => v.Body).ToArray(), settings.Quick ? 5 : 21);
            for (int i = 0; i < variants.Length; i++)
                table.AddRow(variants[i].Name, medians[i]);
        }

        if (settings.LayerVariants)
        {
            Perf.LayerVariants.AddRows(table, layer, xg, settings.Quick ? 5 : settings.Rounds);
            table.AddNote(MachineFigures.Measure(settings));
            table.Publish(settings.Output);
            return 0;
        }
        if (settings.LayerPhasesOnly)
        {
            var hashedOnly = SignHashKernel.Run(x, bits, l1Scaled: true, 1f, withJacobian: true);
            var codesOnly = layer.Hash(x);
            int[] r32 = codesOnly.Rows.data<long>().Select(v => (int)v).ToArray();
            float[] w32 = codesOnly.Weights.data<float>().ToArray();
            using var gOut = randn(n, h);
            using var gW = zeros(n, d / bits);
            using var gT = zeros_like(layer.Table);
            LayerBenchmarkPhases(table, layer, linear, xg, hashedOnly, randn(n, d / bits), gOut,
                () => RowPassAlone(r32, w32, d / bits, layer.Table, gOut, gW, gT), settings.Quick ? 5 : 15);
            table.AddNote(MachineFigures.Measure(settings));
            table.Publish(settings.Output);
            return 0;
        }
        Row("hash, no grad", () => Scoped(() => { using var g = no_grad(); layer.Hash(x); }));
        Row("hash, with Jacobian", () => Scoped(() => layer.Hash(xg)));
        var hashed = SignHashKernel.Run(x, bits, l1Scaled: true, 1f, withJacobian: true);
        var gradWeights = randn(n, d / bits);
        Row("hash backward (dx = ∂L/∂w · J)", () => Scoped(() => SignHashKernel.Backward(gradWeights, hashed.Jacobian!, bits)));
        Row("hash, torch-ops reference, no grad", () => Scoped(() => { using var g = no_grad(); SignHash.Reference(x, bits, HashWeightFunction.L1ScaledSigmoidProduct, 1.0); }));
        var codes = layer.Hash(x);
        var x2 = randn(n, h);
        Row("gather fwd, no grad", () => Scoped(() => { using var g = no_grad(); FusedMemoryGather.Apply(codes.Rows, codes.Weights, layer.Table); }));
        var flatRows = codes.Rows.data<long>().Select(v => (int)v).ToArray();
        var flatWeights = codes.Weights.data<float>().ToArray();
        void Sort(bool chunked) => SortHits(flatRows, flatWeights, d / bits, (int)layer.Table.shape[0], chunked);
        Row("backward's hit sort by row, chunk blocks in parallel", () => Sort(chunked: true));
        Row("backward's hit sort by row, serial", () => Sort(chunked: false));
        var gradOut = randn(n, h);
        var weightGrad = zeros(n, d / bits);
        var tableGrad = zeros_like(layer.Table);
        void RowPass() => RowPassAlone(flatRows, flatWeights, d / bits, layer.Table, gradOut, weightGrad, tableGrad);
        Interleaved(
            ("backward's chunked sort + row pass (table + weight gradients)", RowPass),
            ("  the same, ∂L/∂y rows not prefetched", () => KernelSettings.Current.With(k => k.PrefetchHitRows = false, RowPass)));
        Interleaved(
            ("layer fwd, no grad", () => Scoped(() => { using var g = no_grad(); layer.call(x); })),
            ("  its hash alone, no grad", () => Scoped(() => { using var g = no_grad(); layer.Hash(x); })),
            ("  its gather alone, no grad", () => Scoped(() => { using var g = no_grad(); FusedMemoryGather.Apply(codes.Rows, codes.Weights, layer.Table); })),
            ("  its bias add alone", () => Scoped(() => { using var g = no_grad(); Runtime.LiveScalars.Add(x2, layer.Bias); })));
        Row("layer fwd, grad graph", () => Scoped(() => { xg.grad = null; layer.call(xg); }));
        void FwdBwd(Tensor input) { input.grad = null; foreach (var p in layer.parameters()) p.grad = null; layer.call(input).sum().backward(); }
        Row("layer fwd+bwd (all grads)", () => Scoped(() => FwdBwd(xg)));
        var kernels = KernelSettings.Current;
        layer.Gradient.Attached = true;                                   // the training loop's in-place table gradient
        void WithBias(bool fold, Action body) => kernels.With(k => k.FoldBias = fold, body);
        void Fwd() => Scoped(() => { xg.grad = null; layer.call(xg); });
        void Bf16(bool tables, bool rows, Action body) => kernels.With(k => { k.Bf16ForwardTables = tables; k.Bf16GradientRows = rows; }, body);
        Interleaved(
            ("layer fwd, grad graph, fp32 tables", () => Bf16(false, false, Fwd)),
            ("  the same, forward reads the bf16 table copy (Bf16ForwardTables)", () => Bf16(true, false, Fwd)),
            ("layer fwd+bwd, fp32 tables and ∂L/∂y rows", () => Bf16(false, false, () => Scoped(() => FwdBwd(xg)))),
            ("  the same, bf16 table copy in the forward", () => Bf16(true, false, () => Scoped(() => FwdBwd(xg)))),
            ("  the same, bf16 ∂L/∂y rows in the backward (Bf16GradientRows)", () => Bf16(false, true, () => Scoped(() => FwdBwd(xg)))),
            ("  the same, both (mixed)", () => Bf16(true, true, () => Scoped(() => FwdBwd(xg)))));
        Interleaved(
            ("layer fwd, no grad, bias folded into the gather", () => WithBias(true, () => Scoped(() => { using var g = no_grad(); layer.call(x); }))),
            ("layer fwd, no grad, bias added after it", () => WithBias(false, () => Scoped(() => { using var g = no_grad(); layer.call(x); }))),
            ("layer fwd+bwd, bias folded into the gather", () => WithBias(true, () => Scoped(() => FwdBwd(xg)))),
            ("layer fwd+bwd, bias added after it", () => WithBias(false, () => Scoped(() => FwdBwd(xg)))));
        kernels.With(k => k.WriteTouchedRowsOnly = false,
            () => Row("layer fwd+bwd (all grads), whole table gradient written", () => Scoped(() => FwdBwd(xg))));
        kernels.With(k => k.WeightGradientInRowPass = false,
            () => Row("layer fwd+bwd (all grads), weight gradient in its own pass", () => Scoped(() => FwdBwd(xg))));
        kernels.With(k => k.StreamingStores = false,
            () => Row("layer fwd+bwd (all grads), table gradient through the cache", () => Scoped(() => FwdBwd(xg))));
        Row("layer fwd+bwd (all grads), again", () => Scoped(() => FwdBwd(xg)));
        layer.Gradient.Attached = false;
        Row("layer fwd+bwd (all grads), standalone: table gradient through autograd", () => Scoped(() => FwdBwd(xg)));
        layer.Gradient.Attached = true;
        Row("layer fwd+bwd, x without grad (table + bias grads)", () => Scoped(() => FwdBwd(x)));
        layer.Table.requires_grad = false;
        Row("layer fwd+bwd, table frozen (dx + weight grads)", () => Scoped(() => FwdBwd(xg)));
        layer.Table.requires_grad = true;
        Row("table-sized zeros (allocation + one write)", () => Scoped(() => zeros_like(layer.Table)));
        Row("Linear fwd+bwd", () => Scoped(() => { xg.grad = null; foreach (var p in linear.parameters()) p.grad = null; linear.call(xg).sum().backward(); }));
        LayerBenchmarkPhases(table, layer, linear, xg, hashed, gradWeights, gradOut, RowPass, settings.Quick ? 5 : 15);
        table.Publish(settings.Output);
        return 0;
    }

    /// <summary>
    /// <c>perf layer</c>'s MF fwd + bwd (table gradient attached, no update armed) and its phases, all interleaved (median of
    /// <paramref name="rounds"/> rounds), beside Linear's: "the rest" is the whole call less its forward (with the grad graph) and
    /// the backward's kernels (hit sort + row pass, hash backward, bias sum), i.e. autograd, ∂L/∂y = ones, the dx add and allocations.
    /// </summary>
    private static void LayerBenchmarkPhases(PerfTable table, MemoryLayer layer, TorchSharp.Modules.Linear linear, Tensor xg, SignHashKernel.Result hashed,
        Tensor gradWeights, Tensor gradOut, Action rowPass, int rounds)
    {
        void Scoped(Action body) { using var s = NewDisposeScope(); body(); }
        void Clear(TorchSharp.torch.nn.Module m) { xg.grad = null; foreach (var p in m.parameters()) p.grad = null; }
        int bits = layer.BitsPerChunk;
        layer.Gradient.Attached = true;
        var codes = layer.Hash(xg.detach());
        (string Name, Action Body)[] phases =
        [
            // Each call marks the table written, as an optimizer step does before every training forward, so no forward finds the
            // pooled tile-major copy current: the forward runs the plan a training step runs (LayerCase does the same for perf layer).
            ("perf layer: MF fwd+bwd (table gradient attached, no update, table marked written)",
                () => Scoped(() => { TileMajorBuffer.NoteRawWrite(); Clear(layer); layer.call(xg).sum().backward(); })),
            ("  MF forward with the grad graph (hash + gather)", () => Scoped(() => { TileMajorBuffer.NoteRawWrite(); xg.grad = null; layer.call(xg); })),
            ("    hash with Jacobian", () => Scoped(() => SignHashKernel.Run(xg.detach(), bits, l1Scaled: true, 1f, withJacobian: true))),
            (KernelSettings.Current.TiledStridedCopy
                ? "    gather forward as a training step runs it (a backward can follow: tiles copied straight from the table, TiledStridedCopy), bias folded"
                : "    gather forward as a training step runs it (a backward can follow: the table copied tile-major first), bias folded",
                () => Scoped(() => { TileMajorBuffer.NoteRawWrite(); FusedMemoryGather.ApplyMany(codes.Rows, codes.Weights, [layer.Table], biases: [layer.Bias]); })),
            ("  backward: hit sort + row pass (table gradient, streaming stores; weight gradient)", rowPass),
            ("  backward: hash backward (dx = ∂L/∂w · J)", () => Scoped(() => SignHashKernel.Backward(gradWeights, hashed.Jacobian!, bits))),
            ("  backward: bias gradient (Σ_n ∂L/∂y)", () => Scoped(() => gradOut.sum(0L))),
            ("perf layer: Linear fwd+bwd", () => Scoped(() => { Clear(linear); linear.call(xg).sum().backward(); })),
            ("  Linear forward", () => Scoped(() => { using var g = no_grad(); linear.call(xg); })),
        ];
        var looped = phases.Select(p => Timing.Looped(p.Body, 1, 60)).ToArray();
        var medians = Timing.Interleave(looped.Select(l => l.Body).ToArray(), rounds);
        var ms = medians.Select((m, i) => m / looped[i].Loops).ToArray();
        for (int i = 0; i < phases.Length; i++)
            table.AddRow("[interleaved] " + phases[i].Name, ms[i]);
        table.AddRow("[interleaved]   the rest of MF fwd+bwd (autograd, ∂L/∂y, dx add, allocations)", ms[0] - ms[1] - ms[4] - ms[5] - ms[6]);
        table.AddNote($"[interleaved] rows: {rounds} interleaved rounds after a warm-up, each body looped to ≥ 60 ms; {Timing.LoadAverage():F1} load average at the end");
    }

    /// <summary>The gather's backward kernels alone: the hit sort, then the row pass writing the table and weight gradients.</summary>
    private static unsafe void RowPassAlone(int[] rows, float[] weights, int chunks, Tensor table, Tensor gradOut, Tensor weightGrad, Tensor tableGrad)
    {
        int rowCount = (int)table.shape[0], h = (int)table.shape[1];
        fixed (float* w = weights)
        {
            using var hits = RowHits.Build(rows, rows.Length, chunks, w, rowCount, chunked: true);
            var pass = new TableGradientPass.RowPass(hits, (nint)TensorMemory.Floats(table), (nint)TensorMemory.Floats(gradOut), h,
                (nint)TensorMemory.Floats(weightGrad));
            TableGradientPass.WriteAll(pass, rowCount, tableGrad, accumulate: false);
        }
    }

    private static unsafe void SortHits(int[] rows, float[] weights, int chunks, int rowCount, bool chunked)
    {
        fixed (float* w = weights)
            RowHits.Build(rows, rows.Length, chunks, w, rowCount, chunked).Dispose();
    }
}
