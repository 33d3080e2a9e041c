namespace TextGeneration;

/// <summary>Draws the training-loss curve to a PNG with ScottPlot.</summary>
public static class LossChart
{
    /// <summary>Saves the per-step loss and its centred 20-step moving average to <paramref name="path"/>.</summary>
    /// <param name="losses">Training loss of every step (nats per byte).</param>
    /// <param name="path">PNG file to write.</param>
    public static void Save(IReadOnlyList<double> losses, string path)
    {
        var plot = new ScottPlot.Plot();
        double[] steps = Enumerable.Range(1, losses.Count).Select(i => (double)i).ToArray();
        var raw = plot.Add.Scatter(steps, losses.ToArray());
        raw.LegendText = "loss per step";
        raw.MarkerSize = 0;
        raw.LineWidth = 1;
        var smooth = plot.Add.Scatter(steps, MovingAverage(losses, 20));
        smooth.LegendText = "20-step average";
        smooth.MarkerSize = 0;
        smooth.LineWidth = 2;
        plot.XLabel("step");
        plot.YLabel("training loss (nats per byte)");
        plot.Title("MemoryFormer on Moby Dick");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);   // the curve ends low on the right
        plot.SavePng(path, 900, 500);
    }

    /// <summary>The mean of the <paramref name="window"/> steps centred on each step (fewer at the ends), so the curve does not lag
    /// the raw loss as a trailing average does where the loss falls fast.</summary>
    private static double[] MovingAverage(IReadOnlyList<double> values, int window) =>
        values.Select((_, i) =>
        {
            int from = Math.Max(0, i - window / 2), to = Math.Min(values.Count, i + window / 2);
            return values.Skip(from).Take(to - from).Average();
        }).ToArray();
}
