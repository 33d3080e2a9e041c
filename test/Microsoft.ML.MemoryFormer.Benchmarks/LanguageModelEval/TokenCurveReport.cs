using System.Globalization;
using System.Text;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>The learning curves of <c>bench lm-tokens --eval-every</c>: a table and a ScottPlot chart of each model's
/// validation loss on the tuning text against its training seconds (validation passes taken out, <see cref="TrainingClock"/>).</summary>
internal static class TokenCurveReport
{
    /// <summary>One validation: after <paramref name="Step"/> steps and <paramref name="TrainSeconds"/> of training, at 1-minute load <paramref name="Load"/>.</summary>
    public sealed record Point(int Step, double TrainSeconds, double ValidationLoss, double Load);

    /// <summary>One model's curve.</summary>
    public sealed record Curve(string Name, IReadOnlyList<Point> Points);

    /// <summary>One row per validation: model, step, training seconds, nats/token, perplexity, load.</summary>
    public static string Markdown(IReadOnlyList<Curve> curves, string unit)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine($"| model | step | train {unit} | validation nats/token (tuning text) | validation perplexity | load (1 min) |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var curve in curves)
            foreach (var p in curve.Points)
                text.AppendLine(c, $"| {curve.Name} | {p.Step} | {p.TrainSeconds:F0} | {p.ValidationLoss:F4} | {Math.Exp(p.ValidationLoss):F1} | {p.Load:F1} |");
        return text.ToString();
    }

    /// <summary>Validation loss (nats/token) against training seconds, one line with markers per model.</summary>
    public static void SavePlot(IReadOnlyList<Curve> curves, string path, string title, string unit)
    {
        var plot = new ScottPlot.Plot();
        foreach (var curve in curves)
        {
            var line = plot.Add.Scatter(curve.Points.Select(p => p.TrainSeconds).ToArray(), curve.Points.Select(p => p.ValidationLoss).ToArray());
            line.LegendText = $"{curve.Name}: {curve.Points[^1].ValidationLoss:F3}";
            line.LineWidth = 2;
            line.MarkerSize = 5;
        }
        plot.XLabel($"training time, {unit} (validation passes excluded)");
        plot.YLabel("validation loss on the tuning text (nats/token)");
        plot.Title($"{title}: MemoryFormer vs dense, learning curves");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        plot.SavePng(path, 900, 500);
    }
}
