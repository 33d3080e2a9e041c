using System.ComponentModel;
using System.Globalization;
using Spectre.Console.Cli;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf dense-bf16-probe</c> (issue 16, training ratios): the dense baseline's Linear layers at the <c>perf train</c>
/// shapes (N = 2,048 tokens; Q/K/V d → 3d, W_O d → d, FFN d → 4d and 4d → d at d = 256 and 512), forward + backward
/// in fp32 against bf16 with fp32 master weights as torch autocast computes them (x and W cast to bf16 on every
/// call, bf16 GEMMs — oneDNN on this CPU —, the output cast back to fp32 for the fp32 ops that follow, the
/// gradients cast back to fp32), interleaved; also the bare GEMMs and the casts alone.
/// </summary>
internal sealed class DenseBf16ProbeCommand : Command<DenseBf16ProbeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--rounds")]
        [Description("Interleaved rounds per shape (median reported). Default 7; --quick 3.")]
        [DefaultValue(7)]
        public int Rounds { get; init; } = 7;

        [CommandOption("--width")]
        [Description("Only the shapes of this width (256 or 512). Default: both.")]
        public int? Width { get; init; }
    }

    private const int Tokens = 2048;

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string machine = MachineFigures.Measure(settings);
        var (fp32Gflops, bf16Gflops) = GemmGflops();
        int rounds = settings.Quick ? 3 : settings.Rounds;
        var table = new PerfTable("dense-bf16-probe", $"Dense Linear layers at the perf train shapes (N = {Tokens}), fp32 vs bf16 (autocast-style), {rounds} interleaved rounds",
            "layer", "variant", "median ms", "GFLOP/s", "fp32 ÷ this", "page faults/call");
        foreach (int d in new[] { 256, 512 }.Where(w => settings.Width is null || settings.Width == w))
        {
            foreach (var (name, inputs, outputs) in new[] { ("Q/K/V", d, 3 * d), ("W_O", d, d), ("FFN expand", d, 4 * d), ("FFN project", 4 * d, d) })
                Measure(table, $"d={d} {name} [{Tokens}, {inputs}] → {outputs}", inputs, outputs, rounds);
        }
        table.AddNote("fwd+bwd = y = linear(x, W, b) and autograd.grad of x, W, b for a fixed ∂L/∂y (GFLOP/s of 6·N·in·out); " +
            "bf16 autocast-style = x, W, b cast to bf16 inside the graph each call (W once per step: a layer runs once a step), linear in bf16, y cast to fp32, " +
            "the gradients flowing back through the casts to fp32; bare GEMM = the forward torch.mm alone on tensors already in the dtype (2·N·in·out); " +
            "casts = x → bf16 and W → bf16 alone; page faults = minor faults of one more call after the timed rounds (fresh pages mapped); fp32 ÷ this = median over rounds of the fp32 row's time ÷ this row's time within a round (> 1: this is faster)");
        table.AddNote(FormattableString.Invariant($"1024³ torch.mm, fp32 and bf16 interleaved, best of 7 rounds: fp32 {fp32Gflops:F1}, bf16 {bf16Gflops:F1} GFLOP/s"));
        table.AddNote(machine);
        table.Publish(settings.Output);
        return 0;
    }

    /// <summary>Times one Linear shape's variants interleaved and adds a row per variant.</summary>
    private static void Measure(PerfTable table, string layer, int inputs, int outputs, int rounds)
    {
        var x = randn(Tokens, inputs).requires_grad_(true);                     // [N, in]
        var w = (randn(outputs, inputs) * 0.02).detach().requires_grad_(true);  // [out, in]
        var b = zeros(outputs).requires_grad_(true);                            // [out]
        var dy = randn(Tokens, outputs);                                         // [N, out]
        var (xb, wb) = (x.detach().to(ScalarType.BFloat16), w.detach().to(ScalarType.BFloat16));
        var wt = w.detach().t().contiguous();
        var wbt = wb.t().contiguous();
        var bodies = new (string Name, double Flops, Action Body)[]
        {
            ("fp32 fwd+bwd", 6.0 * Tokens * inputs * outputs, () => Step(x, w, b, dy, bf16: false)),
            ("bf16 autocast-style fwd+bwd", 6.0 * Tokens * inputs * outputs, () => Step(x, w, b, dy, bf16: true)),
            ("fp32 bare GEMM (fwd)", 2.0 * Tokens * inputs * outputs, () => { using var _ = no_grad(); using var y = x.mm(wt); }),
            ("bf16 bare GEMM (fwd)", 2.0 * Tokens * inputs * outputs, () => { using var _ = no_grad(); using var y = xb.mm(wbt); }),
            ("casts x, W → bf16", double.NaN, () =>
            {
                using var _ = no_grad();
                using var cx = x.to(ScalarType.BFloat16);
                using var cw = w.to(ScalarType.BFloat16);
            }),
        };
        var times = Timing.InterleaveRounds(bodies.Select(v => v.Body).ToArray(), rounds);
        for (int i = 0; i < bodies.Length; i++)
        {
            double median = Timing.Median(times[i]);
            int reference = i < 2 ? 0 : i < 4 ? 2 : -1;
            string ratio = reference < 0 || reference == i ? "" : Timing.Median(times[reference].Zip(times[i], (r, t) => r / t)).ToString("F2", CultureInfo.InvariantCulture) + "×";
            long faults = PageFaults.Minor();
            bodies[i].Body();                                                    // one more call, untimed, for its page faults
            table.AddRow(layer, bodies[i].Name, median, double.IsNaN(bodies[i].Flops) ? double.NaN : bodies[i].Flops / (median * 1e6), ratio,
                (double)(PageFaults.Minor() - faults));
        }
        foreach (var t in new[] { x, w, b, dy, xb, wb, wt, wbt })
            t.Dispose();
    }

    /// <summary>One Linear forward + backward: fp32, or bf16 with fp32 masters (the casts inside the graph).</summary>
    private static void Step(Tensor x, Tensor w, Tensor b, Tensor dy, bool bf16)
    {
        using var scope = NewDisposeScope();
        var y = bf16
            ? F.linear(x.to(ScalarType.BFloat16), w.to(ScalarType.BFloat16), b.to(ScalarType.BFloat16)).to(ScalarType.Float32) // [N, out] fp32
            : F.linear(x, w, b);                                                                                               // [N, out]
        autograd.grad([y], [x, w, b], [dy]);                                    // ∂L/∂x [N, in], ∂L/∂W [out, in], ∂L/∂b [out], all fp32
    }

    /// <summary>fp32 and bf16 GEMM throughput now, timed interleaved: the best of 7 rounds of torch.mm 1024³ in each.</summary>
    private static (double Fp32, double Bf16) GemmGflops()
    {
        const int n = 1024;
        using var a = randn(n, n);
        using var c = randn(n, n);
        using var ab = a.to(ScalarType.BFloat16);
        using var cb = c.to(ScalarType.BFloat16);
        var times = Timing.InterleaveRounds([() => { using var p = a.mm(c); }, () => { using var p = ab.mm(cb); }], 7);
        return (2.0 * n * n * n / (times[0].Min() * 1e6), 2.0 * n * n * n / (times[1].Min() * 1e6));
    }
}
