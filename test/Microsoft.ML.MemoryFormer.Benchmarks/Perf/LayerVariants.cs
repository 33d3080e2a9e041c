using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf profile --layer-variants</c>: <c>perf layer</c>'s MF call (d = 512, N = 4096 by default) with the layer round's switches on
/// and off, one looped call each per round, the order rotated every round: median wall and CPU ms per call and the median of the
/// per-round ratios baseline ÷ variant (&gt; 1: the variant faster), wall and CPU. CPU time (the process's, all threads) leaves out
/// the time spent waiting for a core, so on the shared machine it is the steadier of the two.
/// </summary>
internal static class LayerVariants
{
    /// <summary>Adds one row per variant to <paramref name="table"/>.</summary>
    public static void AddRows(PerfTable table, MemoryLayer layer, Tensor xg, int rounds)
    {
        layer.Gradient.Attached = true;
        void Call(bool written)
        {
            if (written)
                TileMajorBuffer.NoteRawWrite();                              // as after an optimizer step: the forward runs the training plan
            using var s = NewDisposeScope();
            xg.grad = null;
            foreach (var p in layer.parameters())
                p.grad = null;
            layer.call(xg).sum().backward();
        }
        void Forward() { using var s = NewDisposeScope(); using var g = no_grad(); layer.call(xg); }
        Action With(Action<KernelSettings> change, Action body) => () => KernelSettings.Current.With(change, body);
        (string Name, Action Body, int Baseline)[] variants =
        [
            (KernelSettings.Current.TiledStridedCopy
                ? "MF fwd+bwd, table written before each call (as in training: the forward copies its tiles straight from the table, TiledStridedCopy)"
                : "MF fwd+bwd, table written before each call (as in training: the forward copies the table tile-major first)", () => Call(true), 0),
            ("MF fwd+bwd, the copy of the previous call reused (ReuseTileMajorBuffer)", () => Call(false), 0),
            ("MF fwd (no grad), table copied every call (ReuseTileMajorBuffer off)", With(k => k.ReuseTileMajorBuffer = false, Forward), 2),
            ("MF fwd (no grad), the copy reused (as it is)", Forward, 2),
        ];
        var (wall, cpu, loops) = Time(variants.Select(v => v.Body).ToArray(), rounds);
        for (int i = 0; i < variants.Length; i++)
        {
            int b = variants[i].Baseline;
            double Ratio(double[][] t) => Timing.Median(t[b].Zip(t[i], (x, y) => x / y));
            table.AddRow($"{variants[i].Name}: wall ms / CPU ms / wall ÷ / CPU ÷ (row {b} ÷ this)",
                $"{Timing.Median(wall[i]):F2} / {Timing.Median(cpu[i]):F2} / {Ratio(wall):F3} / {Ratio(cpu):F3}");
        }
        table.AddNote($"{rounds} interleaved rounds after one untimed, order rotated, each body looped to ≥ 60 ms ({string.Join(", ", loops)} calls); " +
            $"ratios: median over rounds of the baseline row ÷ this (> 1: this faster); {Timing.LoadAverage():F1} load average at the end");
    }

    /// <summary>Wall and CPU ms per call of each body, per round (the first round untimed), and the calls per looped body.</summary>
    private static (double[][] Wall, double[][] Cpu, int[] Loops) Time(Action[] bodies, int rounds)
    {
        var looped = bodies.Select(b => Timing.Looped(b, 2, 60)).ToArray();
        var wall = bodies.Select(_ => new double[rounds]).ToArray();
        var cpu = bodies.Select(_ => new double[rounds]).ToArray();
        using var process = Process.GetCurrentProcess();
        for (int round = -1; round < rounds; round++)
        {
            foreach (int i in Timing.Rotation(bodies.Length, Math.Max(0, round)))
            {
                process.Refresh();
                var before = process.TotalProcessorTime;
                long start = Stopwatch.GetTimestamp();
                looped[i].Body();
                double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                process.Refresh();
                if (round < 0)
                    continue;
                wall[i][round] = ms / looped[i].Loops;
                cpu[i][round] = (process.TotalProcessorTime - before).TotalMilliseconds / looped[i].Loops;
            }
        }
        return (wall, cpu, looped.Select(l => l.Loops).ToArray());
    }
}
