using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary><c>perf all</c>: bandwidth, optimizer, train, decode and the layer sweep in one run, one Markdown summary.</summary>
internal sealed class AllCommand : Command<LayerCommand.Settings>
{
    public override int Execute(CommandContext context, LayerCommand.Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        var tables = new List<PerfTable> { BandwidthCommand.Measure(settings), OptimizerCommand.Measure(settings) };
        foreach (var t in tables) t.Publish(settings.Output);
        foreach (var make in new Func<PerfSettings, PerfTable>[] { TrainCommand.Measure, DecodeCommand.Measure })
        {
            var t = make(settings);
            t.Publish(settings.Output);
            tables.Add(t);
        }
        new LayerCommand().Execute(context, settings, cancellationToken);
        var names = tables.Select(t => t.Name).Append("layer");
        File.WriteAllText(Path.Combine(settings.Output, "summary.md"),
            string.Join("\n", names.Select(n => File.ReadAllText(Path.Combine(settings.Output, n + ".md")))));
        return 0;
    }
}
