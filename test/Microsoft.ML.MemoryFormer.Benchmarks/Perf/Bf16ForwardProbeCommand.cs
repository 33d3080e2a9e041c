using System.ComponentModel;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf probe-bf16fwd</c> (issue 16): one Memory Layer's forward (with a grad graph, as in training) over the fp32 table and
/// over its bf16 copy (<c>KernelSettings.Bf16ForwardTables</c>), tiled and token-major, timed interleaved by the process's CPU
/// time as well as wall time: on a loaded machine CPU time with one thread is less disturbed by waiting for a core.
/// </summary>
internal sealed class Bf16ForwardProbeCommand : Command<Bf16ForwardProbeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("d (= h), τ = 8. Default 512.")]
        [DefaultValue(512)]
        public int Width { get; init; } = 512;

        [CommandOption("--tokens")]
        [Description("N. Default 4096.")]
        [DefaultValue(4096)]
        public int Tokens { get; init; } = 4096;
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        int d = settings.Width, n = settings.Tokens;
        random.manual_seed(7);
        using var layer = new MemoryLayer(d / 8, 8, d, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.02, 0.001);
        layer.Gradient.Attached = true;
        var x = randn(n, d).requires_grad_(true);
        var k = KernelSettings.Current;
        using var linear = TorchSharp.torch.nn.Linear(d, d);
        void Fwd() { using var s = NewDisposeScope(); x.grad = null; layer.call(x); }
        void FwdBwd(TorchSharp.torch.nn.Module<Tensor, Tensor> m)
        {
            using var s = NewDisposeScope();
            x.grad = null;
            foreach (var p in m.parameters()) p.grad = null;
            m.call(x).sum().backward();
        }
        Action V(bool bf16, bool tiled, int group = 0) => () => k.With(s => { s.Bf16ForwardTables = bf16; s.TiledForward = tiled; }, () =>
        {
            int saved = Bf16TiledGather.GroupBytes;
            Bf16TiledGather.GroupBytes = group > 0 ? group : saved;
            try { Fwd(); } finally { Bf16TiledGather.GroupBytes = saved; }
        });
        Action B(bool tables, bool rows) => () => k.With(s => { s.Bf16ForwardTables = tables; s.Bf16GradientRows = rows; }, () => FwdBwd(layer));
        (string Name, Action Body)[] variants =
        [
            ("fp32 table, tiled (default)", V(false, true)),
            ("bf16 copy, 32-column bf16 tiles, 512 KB groups", V(true, true)),
            ("bf16 copy, 32-column bf16 tiles, 256 KB groups", V(true, true, 256 * 1024)),
            ("fp32 table, token-major", V(false, false)),
            ("bf16 copy, token-major", V(true, false)),
            ("Linear fwd+bwd", () => FwdBwd(linear)),
            ("MF fwd+bwd, fp32 (default)", B(false, false)),
            ("MF fwd+bwd, bf16 table copy in the forward", B(true, false)),
            ("MF fwd+bwd, bf16 ∂L/∂y rows in the backward", B(false, true)),
            ("MF fwd+bwd, both (mixed)", B(true, true)),
            ("MF fwd+bwd, both, inner products on the fp32 rows (probe)", () =>
            {
                TableGradientPass.RowPass.RoundDotRows = false;
                try { B(true, true)(); } finally { TableGradientPass.RowPass.RoundDotRows = true; }
            }),
        ];
        foreach (var v in variants) v.Body();                              // warm-up (the copy is built here)
        int rounds = settings.Quick ? 5 : 11, loops = 3;
        var cpu = variants.Select(_ => new List<double>()).ToArray();
        var wall = variants.Select(_ => new List<double>()).ToArray();
        var process = Process.GetCurrentProcess();
        for (int r = 0; r < rounds; r++)
            for (int j = 0; j < variants.Length; j++)
            {
                int i = (j + r) % variants.Length;                         // rotate the order each round
                process.Refresh();
                var c0 = process.TotalProcessorTime;
                long t0 = Stopwatch.GetTimestamp();
                for (int l = 0; l < loops; l++) variants[i].Body();
                wall[i].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds / loops);
                process.Refresh();
                cpu[i].Add((process.TotalProcessorTime - c0).TotalMilliseconds / loops);
            }
        var table = new PerfTable($"probe-bf16fwd-d{d}-n{n}", $"Memory Layer forward with a grad graph, and fwd+bwd beside Linear, d={d}, N={n}: fp32 table vs bf16 copy (ms, median)",
            "variant", "CPU ms (all threads)", "wall ms", "CPU: fp32 tiled fwd ÷ this", "CPU: Linear fwd+bwd ÷ this");
        for (int i = 0; i < variants.Length; i++)
            table.AddRow(variants[i].Name, Timing.Median(cpu[i]), Timing.Median(wall[i]),
                i < 5 ? Timing.Median(cpu[0].Zip(cpu[i], (a, b) => a / b)) : double.NaN,
                i >= 5 ? Timing.Median(cpu[5].Zip(cpu[i], (a, b) => a / b)) : double.NaN);
        table.AddNote($"{rounds} rounds, each variant {loops} calls per round, order rotated each round; torch threads {get_num_threads()}; " +
            "CPU = the process's user + system time over the calls (includes the hash and autograd bookkeeping)");
        table.AddNote(MachineFigures.Measure(settings));
        table.Publish(settings.Output);
        return 0;
    }
}
