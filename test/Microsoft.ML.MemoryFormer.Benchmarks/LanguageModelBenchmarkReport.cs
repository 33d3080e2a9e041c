using System.Text;

namespace Microsoft.ML.MemoryFormer.Benchmarks;

/// <summary>The language-model benchmark's results as a Markdown table, samples and a loss-curve PNG.</summary>
internal sealed record LanguageModelBenchmarkReport(string Data, int Steps, int ValidationBytes, IReadOnlyList<LanguageModelBenchmarkResult> Results)
{
    public string ToMarkdown()
    {
        var md = new StringBuilder();
        md.AppendLine($"Data: `{Data}` (first 90% train, last 10% validation; {ValidationBytes:N0} validation bytes scored), byte-level, d = 256, 4 layers, 4 heads, " +
            $"T = 128, batch 16, {Steps} steps each, {Environment.ProcessorCount} cores.");
        md.AppendLine();
        md.AppendLine("| model | params | steps | **val nats/byte** | **val bits/byte** | val perplexity | train tokens/s | decode tokens/s (batch 1, KV cache) | final train loss (20-step mean) |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in Results)
            md.AppendLine($"| {r.Name} | {r.Parameters / 1e6:F2}M | {Steps} | **{r.Validation.LossNatsPerToken:F4}** | " +
                $"**{r.Validation.BitsPerByte:F4}** | {r.Validation.Perplexity:F2} | {r.TrainTokensPerSecond:F0} | " +
                $"{r.DecodeTokensPerSecond:F0} | {r.LossHistory.TakeLast(20).Average():F3} |");
        foreach (var r in Results)
        {
            md.AppendLine().AppendLine($"{r.Name} samples (temperature 0.8, 200 bytes, seed 1337):");
            foreach (var (prompt, sample) in new[] { "ROMEO:\n", "\n" }.Zip(r.Samples))
                md.AppendLine("```").AppendLine(prompt + sample).AppendLine("```");
        }
        return md.ToString();
    }

    public void SaveLossChart(string path)
    {
        var plot = new ScottPlot.Plot();
        foreach (var r in Results)
        {
            double[] steps = Enumerable.Range(1, r.LossHistory.Count).Select(i => (double)i).ToArray();
            double[] smooth = r.LossHistory.Select((_, i) => r.LossHistory.Skip(Math.Max(0, i - 19)).Take(Math.Min(20, i + 1)).Average()).ToArray();
            var line = plot.Add.Scatter(steps, smooth);
            line.LegendText = $"{r.Name} (val {r.Validation.BitsPerByte:F3} bits/byte)";
            line.MarkerSize = 0;
            line.LineWidth = 2;
        }
        plot.XLabel("step");
        plot.YLabel("training loss, 20-step mean (nats/byte)");
        plot.Title($"{Data}: MemoryFormer vs dense, {Steps} steps");
        plot.ShowLegend();
        plot.SavePng(path, 900, 500);
    }
}
