using System.Globalization;
using System.Text;
using Spectre.Console;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Classification;

/// <summary>Prints and writes the classification benchmark table.</summary>
internal static class ClassificationReport
{
    private static readonly string[] Headers =
        ["data set", "model", "train / test rows", "accuracy (micro)", "accuracy (macro)", "log-loss", "training time", "scoring rows/s", "notes"];

    public static Table Table(IEnumerable<ClassificationResult> results) => Table("Text classification", Headers, results.Select(Cells));

    public static string Markdown(IEnumerable<ClassificationResult> results) => Markdown(Headers, results.Select(Cells));

    private static readonly string[] OutOfScopeHeaders =
        ["data set", "model", "AUC (in vs out of scope)", "threshold", "in-scope recall", "in-scope accuracy", "accuracy of accepted", "out-of-scope recall", "in / out rows"];

    /// <summary>The out-of-scope table's rows, of the results that measured it; empty when none did.</summary>
    public static IReadOnlyList<string[]> OutOfScopeRows(IEnumerable<ClassificationResult> results) =>
        results.Where(r => r.OutOfScope is not null).Select(r => OutOfScopeCells(r, r.OutOfScope!)).ToList();

    public static Table OutOfScopeTable(IReadOnlyList<string[]> rows) =>
        Table("Out-of-scope rejection by confidence (threshold fitted on the in-scope validation split)", OutOfScopeHeaders, rows);

    public static string OutOfScopeMarkdown(IReadOnlyList<string[]> rows) => Markdown(OutOfScopeHeaders, rows);

    private static Table Table(string title, string[] headers, IEnumerable<string[]> rows)
    {
        var table = new Table().Title(title);
        foreach (var header in headers) table.AddColumn(header);
        foreach (var cells in rows) table.AddRow(cells.Select(Markup.Escape).ToArray());
        return table;
    }

    private static string Markdown(string[] headers, IEnumerable<string[]> rows)
    {
        var text = new StringBuilder();
        text.AppendLine("| " + string.Join(" | ", headers) + " |");
        text.AppendLine("|" + string.Concat(headers.Select(_ => " --- |")));
        foreach (var cells in rows) text.AppendLine("| " + string.Join(" | ", cells) + " |");
        return text.ToString();
    }

    private static string[] OutOfScopeCells(ClassificationResult r, Microsoft.ML.MemoryFormer.MLNet.OutOfScopeMetrics m) =>
    [
        r.Dataset, r.Model, m.AreaUnderRocCurve.ToString("F4", CultureInfo.InvariantCulture), m.Threshold.ToString("G4", CultureInfo.InvariantCulture),
        P(m.InScopeRecall), P(m.InScopeAccuracy), P(m.AcceptedAccuracy), P(m.OutOfScopeRecall),
        string.Create(CultureInfo.InvariantCulture, $"{m.InScopeRows:N0} / {m.OutOfScopeRows:N0}"),
    ];

    private static string[] Cells(ClassificationResult r) =>
    [
        r.Dataset, r.Model, r.RowsCell, P(r.MicroAccuracy), P(r.MacroAccuracy),
        r.LogLoss.ToString("F3", CultureInfo.InvariantCulture), $"{r.TrainingTime.TotalSeconds:F0} s",
        r.ScoringRowsPerSecond.ToString("N0", CultureInfo.InvariantCulture), r.Notes,
    ];

    private static string P(double value) => value.ToString("P2", CultureInfo.InvariantCulture);
}
