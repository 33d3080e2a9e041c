using System.ComponentModel;
using System.Globalization;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf probe-hash</c>: the sign hash kernel alone at <c>perf train</c>'s d = 256 call shapes (N = 2048: the Q/K/V and ML₁
/// input, 256 wide in τ = 8 chunks; ML₂'s, 320 wide in τ + 2 = 10), forward with its Jacobian (training) and without (inference),
/// with <see cref="KernelSettings.WideSignHash"/> off ÷ on in alternating rounds: the ratio of wall time and of the process's CPU time (median of the rounds, lowest–highest; > 1: on is faster), and the
/// milliseconds per call of each; warm calls looped, or with <c>--cold</c> one call at a time after a cache flush.
/// </summary>
internal sealed class HashProbeCommand : Command<HashProbeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--rounds")]
        [Description("Alternating rounds (median). Default 21; --quick: 5.")]
        public int? Rounds { get; init; }

        [CommandOption("--cold")]
        [Description("Time one call at a time right after an untimed write of three times the L3 (at least 96 MB), as a training step finds the data, instead of looping warm calls.")]
        public bool Cold { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string machine = MachineFigures.Measure(settings);
        int rounds = settings.Rounds ?? (settings.Quick ? 5 : 21);
        cold = settings.Cold;
        var table = new PerfTable("probe-hash", $"The sign hash alone, N = 2048, before ÷ after ({rounds} alternating rounds{(cold ? ", each call after a cache flush" : "")}; > 1: after is faster)",
            "call", "before ÷ after", "wall", "CPU", "ms before", "ms after");
        using var scope = NewDisposeScope();
        foreach (var (width, bits) in new[] { (256, 8), (320, 10) })
        {
            var x = randn(2048, width) * 0.5f;
            foreach (bool jacobian in new[] { true, false })
            {
                string call = $"hash forward{(jacobian ? " + Jacobian (training)" : " (inference)")}, {width} wide, τ = {bits}";
                table.AddRow([call, "WideSignHash off ÷ on", .. Compare(Hash(x, bits, false, jacobian), Hash(x, bits, true, jacobian), rounds)]);
            }
            if (bits % 8 == 0)
                table.AddRow([$"hash forward (inference), {width} wide, τ = {bits}", "WideInferenceHash off ÷ on",
                    .. Compare(Hash(x, bits, true, false), Hash(x, bits, true, false, wideInference: true), rounds)]);
            table.AddRow([$"hash forward + Jacobian (training), {width} wide, τ = {bits}", "LeanWideHash off ÷ on",
                .. Compare(Hash(x, bits, true, true, lean: false), Hash(x, bits, true, true), rounds)]);
        }
        table.AddNote("each timed body loops the kernel until it lasts ≥ 20 ms (SignHashKernel.Run with l1-scaled weights, with the Jacobian as in training and without as in inference); wall and " +
            "process CPU time (clock_gettime, all threads) of the same calls; ms per call = the median of the rounds");
        table.AddNote(machine);
        table.Publish(settings.Output);
        return 0;
    }

    private static bool cold;

    private static Action Hash(Tensor x, int bits, bool wide, bool jacobian, bool wideInference = false, bool lean = true) => () => KernelSettings.Current.With(s => (s.WideSignHash, s.WideInferenceHash, s.LeanWideHash) = (wide, wideInference, lean), () =>
    {
        using var scope = NewDisposeScope();
        SignHashKernel.Run(x, bits, l1Scaled: true, 1f, withJacobian: jacobian);
    });

    /// <summary>Median before ÷ after of wall and CPU time (lowest–highest), and ms per call of each.</summary>
    private static object[] Compare(Action off, Action on, int rounds)
    {
        var (loopedOff, loops) = cold ? (off, 1) : Timing.Looped(off, warmup: 20, minMs: 20);
        Action loopedOn = () => { for (int i = 0; i < loops; i++) on(); };
        loopedOn();
        var wall = new double[2][];
        var cpu = new double[2][];
        for (int v = 0; v < 2; v++)
            (wall[v], cpu[v]) = (new double[rounds], new double[rounds]);
        for (int round = 0; round < rounds; round++)
        {
            foreach (int v in Timing.Rotation(2, round))
            {
                if (cold)
                    Timing.EvictCaches();
                double c0 = LayerPhases.ProcessCpuMs();
                long w0 = System.Diagnostics.Stopwatch.GetTimestamp();
                (v == 0 ? loopedOff : loopedOn)();
                wall[v][round] = System.Diagnostics.Stopwatch.GetElapsedTime(w0).TotalMilliseconds / loops;
                cpu[v][round] = (LayerPhases.ProcessCpuMs() - c0) / loops;
            }
        }
        return [Ratios(wall), Ratios(cpu), Timing.Median(wall[0]), Timing.Median(wall[1])];
    }


    private static string Ratios(double[][] t)
    {
        var r = t[0].Zip(t[1], (a, b) => a / b).Order().ToArray();
        var c = CultureInfo.InvariantCulture;
        return $"{Timing.Median(r).ToString("F2", c)} ({r[0].ToString("F2", c)}–{r[^1].ToString("F2", c)})";
    }
}
