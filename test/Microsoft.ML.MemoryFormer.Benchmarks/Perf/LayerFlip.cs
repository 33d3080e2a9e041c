using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf layer-budget --flip NAME</c>: <c>perf layer</c>'s MF fwd + bwd (table marked written) and fwd (copy reused) with one
/// <see cref="KernelSettings"/> switch as it is and flipped, beside Linear's, timed interleaved in one process: the medians, the median of
/// the per-round ratios (lowest–highest), and each body's process CPU time (both threads), which a loaded machine stretches least.
/// </summary>
internal static class LayerFlip
{
    public static PerfTable Measure(int width, int tokens, string name, int rounds, string[] with)
    {
        var property = Switch(name);
        var others = with.Select(Switch).ToArray();
        void Base(KernelSettings k)
        {
            foreach (var o in others)
                o.SetValue(k, true);
        }
        bool current = false;
        KernelSettings.Current.With(Base, () => current = (bool)property.GetValue(KernelSettings.Current)!);
        using var layer = new LayerCase(width, tokens);
        void Flipped(Action body) => KernelSettings.Current.With(k => { Base(k); property.SetValue(k, !current); }, body);
        void Kept(Action body) => KernelSettings.Current.With(Base, body);
        var bodies = new (string Name, Action Body)[]
        {
            ($"MF fwd+bwd, {name} = {current} (default)", () => Kept(layer.MemoryForwardBackward)),
            ($"MF fwd+bwd, {name} = {!current}", () => Flipped(layer.MemoryForwardBackward)),
            ($"MF fwd with grad (table marked written), {name} = {current}", () => Kept(layer.MemoryForwardTraining)),
            ($"MF fwd with grad (table marked written), {name} = {!current}", () => Flipped(layer.MemoryForwardTraining)),
            ($"MF fwd under no_grad (the pooled copy reused), {name} = {current}", () => Kept(layer.MemoryForward)),
            ($"MF fwd under no_grad (the pooled copy reused), {name} = {!current}", () => Flipped(layer.MemoryForward)),
            ("Linear fwd+bwd", layer.LinearForwardBackward),
            ("Linear fwd", layer.LinearForward),
        };
        var looped = bodies.Select(b => Timing.Looped(b.Body, 2, 60)).ToArray();
        var process = Process.GetCurrentProcess();
        var cpu = bodies.Select(_ => new List<double>()).ToArray();
        var timed = looped.Select((l, i) => (Action)(() =>
        {
            process.Refresh();
            var before = process.TotalProcessorTime;
            l.Body();
            process.Refresh();
            cpu[i].Add((process.TotalProcessorTime - before).TotalMilliseconds / l.Loops);
        })).ToArray();
        var wall = Timing.InterleaveRounds(timed, rounds).Select((t, i) => t.Select(v => v / looped[i].Loops).ToArray()).ToArray();
        for (int i = 0; i < cpu.Length; i++)
            cpu[i].RemoveAt(0);                                             // the warm-up round
        string Ratio(double[] a, double[] b)
        {
            var r = a.Zip(b, (x, y) => x / y).Order().ToArray();
            return FormattableString.Invariant($"{r[r.Length / 2]:F3} ({r[0]:F2}–{r[^1]:F2})");
        }
        var table = new PerfTable($"layer-flip-{name}", $"perf layer d = {width}, N = {tokens}: {name} as it is and flipped{(with.Length > 0 ? ", with " + string.Join(", ", with) + " on" : "")}, interleaved ({rounds} rounds)",
            "call", "ms (median)", "CPU ms (both threads)", "Linear ÷ this, wall (per-round median)", "default ÷ this, wall", "default ÷ this, CPU");
        int mf = bodies.Length - 2;                                         // the MF rows come in pairs (default, flipped), then Linear's two
        for (int i = 0; i < bodies.Length; i++)
        {
            int linear = i < 2 || i == mf ? mf : mf + 1, baseline = i < mf ? i - (i % 2) : i;
            table.AddRow(bodies[i].Name, Timing.Median(wall[i]), Timing.Median(cpu[i]), i >= mf ? "—" : Ratio(wall[linear], wall[i]),
                i >= mf || i == baseline ? "—" : Ratio(wall[baseline], wall[i]), i >= mf || i == baseline ? "—" : Ratio(cpu[baseline].ToArray(), cpu[i].ToArray()));
        }
        table.AddNote($"{Timing.LoadAverage():F1} load average at the end; each body looped to ≥ 60 ms a round");
        return table;
    }

    private static System.Reflection.PropertyInfo Switch(string name) =>
        typeof(KernelSettings).GetProperty(name) is { PropertyType: var type } p && type == typeof(bool) ? p
            : throw new ArgumentException($"KernelSettings has no bool switch '{name}'.", nameof(name));
}
