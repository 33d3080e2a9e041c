using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Runtime;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf openmp</c>: what libtorch's idle OpenMP workers cost the managed kernels. Run it once as is and once with
/// <c>GOMP_SPINCOUNT=300000</c> (libgomp's default) to see the difference <see cref="OpenMPSpin"/> makes.
/// </summary>
internal sealed class OpenMPCommand : Command<PerfSettings>
{
    private const int Width = 512, Tokens = 2048, IdleMs = 50;

    public override int Execute(CommandContext context, PerfSettings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        int rounds = settings.Quick ? 5 : 15;
        string policy = $"GOMP_SPINCOUNT={OpenMPSpin.Get("GOMP_SPINCOUNT") ?? "unset"}, OMP_WAIT_POLICY={OpenMPSpin.Get("OMP_WAIT_POLICY") ?? "unset"}" +
            (OpenMPSpin.Applied ? " (set by the library)" : "");
        var table = new PerfTable("openmp", $"Idle OpenMP workers and the managed kernels ({policy})", "measurement", "ms (median)");

        using var layer = new LayerCase(Width, Tokens);
        var a = randn(Tokens, Width);
        var b = randn(Tokens, Width);
        var small = randn(64 * 1024);
        void TorchOp() => a.add_(b);                           // 1M elements: a parallel libtorch op

        // CPU the process burns while its own threads are idle, right after a parallel torch op: the workers' spin.
        var cpu = new double[rounds];
        for (int i = 0; i < rounds; i++)
        {
            TorchOp();
            var before = ProcessCpu();
            Thread.Sleep(IdleMs);
            cpu[i] = (ProcessCpu() - before).TotalMilliseconds;
        }
        table.AddRow($"CPU burnt in a {IdleMs} ms idle gap after a torch op", Timing.Median(cpu));

        // The same work started right after a torch op (workers spinning) or after an idle gap (workers asleep),
        // alternated round by round.
        void Pair(string name, Action body)
        {
            var hot = new double[rounds];
            var cold = new double[rounds];
            for (int i = -1; i < rounds; i++)
            {
                TorchOp();
                double h = Time(body);
                TorchOp();
                Thread.Sleep(IdleMs);
                double c = Time(body);
                if (i < 0) continue;
                hot[i] = h;
                cold[i] = c;
            }
            table.AddRow($"{name}, right after a torch op", Timing.Median(hot));
            table.AddRow($"{name}, after a {IdleMs} ms idle gap", Timing.Median(cold));
        }
        Pair($"Memory Layer forward (managed kernels), d={Width}, N={Tokens}", layer.MemoryForward);
        Pair($"Linear forward (libtorch), d={Width}, N={Tokens}", layer.LinearForward);
        Pair("small torch op (64k-element add)", () => small.add_(small));
        table.AddNote("run with GOMP_SPINCOUNT=300000 (libgomp's default) or OMP_WAIT_POLICY=PASSIVE to compare; the library sets " +
            $"GOMP_SPINCOUNT={OpenMPSpin.SpinCount} only when neither variable is set (Runtime/OpenMPSpin.cs)");
        table.Publish(settings.Output);
        return 0;
    }

    private static TimeSpan ProcessCpu()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime;
    }

    private static double Time(Action body)
    {
        long start = Stopwatch.GetTimestamp();
        body();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
}
