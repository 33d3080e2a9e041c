using System.Globalization;
using System.Text;
using Spectre.Console;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Classification;

/// <summary>Prints and writes the classification benchmark table.</summary>
internal static class ClassificationReport
{
    private static readonly string[] Headers =
        ["data set", "model", "train / test rows", "accuracy (micro)", "accuracy (macro)", "log-loss", "training time", "scoring rows/s", "notes"];

    public static Table Table(IEnumerable<ClassificationResult> results)
    {
        var table = new Table().Title("Text classification");
        foreach (var header in Headers) table.AddColumn(header);
        foreach (var cells in results.Select(Cells)) table.AddRow(cells.Select(Markup.Escape).ToArray());
        return table;
    }

    public static string Markdown(IEnumerable<ClassificationResult> results)
    {
        var text = new StringBuilder();
        text.AppendLine("| " + string.Join(" | ", Headers) + " |");
        text.AppendLine("|" + string.Concat(Headers.Select(_ => " --- |")));
        foreach (var cells in results.Select(Cells)) text.AppendLine("| " + string.Join(" | ", cells) + " |");
        return text.ToString();
    }

    private static string[] Cells(ClassificationResult r) =>
    [
        r.Dataset, r.Model, r.RowsCell, P(r.MicroAccuracy), P(r.MacroAccuracy),
        r.LogLoss.ToString("F3", CultureInfo.InvariantCulture), $"{r.TrainingTime.TotalSeconds:F0} s",
        r.ScoringRowsPerSecond.ToString("N0", CultureInfo.InvariantCulture), r.Notes,
    ];

    private static string P(double value) => value.ToString("P2", CultureInfo.InvariantCulture);
}
