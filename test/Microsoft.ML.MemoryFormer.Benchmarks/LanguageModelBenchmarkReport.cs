using System.Globalization;
using System.Text;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>The language-model benchmark's results as a Markdown table, samples and a loss-curve PNG.</summary>
internal sealed record LanguageModelBenchmarkReport(string Data, int Steps, int ValidationBytes, IReadOnlyList<LanguageModelBenchmarkResult> Results)
{
    /// <summary>Model width d.</summary>
    public int Width { get; init; } = 256;

    /// <summary>Blocks.</summary>
    public int Layers { get; init; } = 4;

    /// <summary>The run's seed (models, batches, sampling).</summary>
    public int Seed { get; init; } = LanguageModelBenchmark.DefaultSeed;

    /// <summary>How the equal wall-clock budget was set; null for an equal-steps run.</summary>
    public string? EqualTimeNote { get; init; }

    /// <summary>The machine's GEMM, copy and load figures measured in the same run (equal wall-clock runs).</summary>
    public IReadOnlyList<string> MachineNotes { get; init; } = [];

    private bool EqualTime => EqualTimeNote is not null;

    public string ToMarkdown() => EqualTime ? EqualTimeMarkdown() : EqualStepsMarkdown();

    private string Setup(string budget) =>
        $"Data: `{Data}` (first 90% train, last 10% validation; {ValidationBytes:N0} validation bytes scored), byte-level, d = {Width}, {Layers} layers, 4 heads, " +
        $"T = 128, batch 16, {budget}, {Environment.ProcessorCount} cores.";

    private string EqualStepsMarkdown()
    {
        var md = new StringBuilder();
        md.AppendLine(Setup($"{Steps} steps each"));
        md.AppendLine();
        md.AppendLine("| model | params | steps | **val nats/byte** | **val bits/byte** | val perplexity | train tokens/s | decode tokens/s (batch 1, KV cache) | final train loss (20-step mean) |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in Results)
            md.AppendLine($"| {r.Name} | {r.Parameters / 1e6:F2}M | {Steps} | **{r.Validation.LossNatsPerToken:F4}** | " +
                $"**{r.Validation.BitsPerByte:F4}** | {r.Validation.Perplexity:F2} | {r.TrainTokensPerSecond:F0} | " +
                $"{r.DecodeTokensPerSecond:F0} | {r.LossHistory.TakeLast(20).Average():F3} |");
        foreach (var r in Results)
        {
            md.AppendLine().AppendLine($"{r.Name} samples (temperature 0.8, 200 bytes, seed {Seed}):");
            foreach (var (prompt, sample) in new[] { "ROMEO:\n", "\n" }.Zip(r.Samples))
                md.AppendLine("```").AppendLine(prompt + sample).AppendLine("```");
        }
        return md.ToString();
    }

    private string EqualTimeMarkdown()
    {
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine(Setup("equal wall-clock"));
        md.AppendLine();
        md.AppendLine("| model | params | budget | steps | train s | train tokens/s | **val bits/byte** | val nats/byte | final train loss (20-step mean) | load average at its end |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in Results)
            md.AppendLine(c, $"| {r.Name} | {r.Parameters / 1e6:F2}M | {r.Budget} | {r.Steps} | {r.TrainSeconds:F0} | {r.TrainTokensPerSecond:F0} | " +
                $"**{r.Validation.BitsPerByte:F4}** | {r.Validation.LossNatsPerToken:F4} | {r.LossHistory.TakeLast(20).Average():F3} | {r.LoadAverage:F2} |");
        md.AppendLine();
        md.AppendLine(EqualTimeNote);
        md.AppendLine();
        foreach (var line in MachineNotes) md.AppendLine($"- {line}");
        return md.ToString();
    }

    public void SaveLossChart(string path)
    {
        var plot = new ScottPlot.Plot();
        foreach (var r in Results)
        {
            // At equal wall-clock the x axis is training time (each step at the run's mean step time), so the two curves end together.
            double xScale = EqualTime ? r.TrainSeconds / r.LossHistory.Count : 1;
            double[] x = Enumerable.Range(1, r.LossHistory.Count).Select(i => i * xScale).ToArray();
            double[] smooth = r.LossHistory.Select((_, i) => r.LossHistory.Skip(Math.Max(0, i - 19)).Take(Math.Min(20, i + 1)).Average()).ToArray();
            var line = plot.Add.Scatter(x, smooth);
            line.LegendText = $"{r.Name}{(EqualTime ? $", {r.Steps} steps" : "")} (val {r.Validation.BitsPerByte:F3} bits/byte)";
            line.MarkerSize = 0;
            line.LineWidth = 2;
        }
        plot.XLabel(EqualTime ? "training seconds (steps at the run's mean step time)" : "step");
        plot.YLabel("training loss, 20-step mean (nats/byte)");
        plot.Title(EqualTime ? $"{Data}: MemoryFormer vs dense at equal wall-clock" : $"{Data}: MemoryFormer vs dense, {Steps} steps");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);   // the curves end low on the right
        plot.SavePng(path, 900, 500);
    }
}
