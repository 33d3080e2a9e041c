using System.Text;
using System.Text.Json;
using Spectre.Console;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// One result table of a perf command: printed with Spectre.Console and written as Markdown and JSON under the
/// output folder (<c>artifacts/perf</c> by default), with the load average at start and end of the run.
/// </summary>
internal sealed class PerfTable(string name, string title, params string[] columns)
{
    private readonly List<string[]> rows = [];
    private readonly List<string> notes = [];
    private readonly double loadAtStart = Timing.LoadAverage();

    public string Name => name;

    public void AddRow(params object[] cells) => rows.Add(cells.Select(Format).ToArray());

    public void AddNote(string note) => notes.Add(note);

    /// <summary>Prints the table and writes <c>{name}.md</c> and <c>{name}.json</c> into <paramref name="folder"/>.</summary>
    public void Publish(string folder)
    {
        double loadAtEnd = Timing.LoadAverage();
        notes.Add($"load average (1 min) at start {loadAtStart:F2}, at end {loadAtEnd:F2}; torch threads {TorchSharp.torch.get_num_threads()}, " +
            $"{Environment.ProcessorCount} logical CPUs, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        var table = new Table().Title(Markup.Escape(title));
        foreach (var c in columns) table.AddColumn(new TableColumn(Markup.Escape(c)).RightAligned());
        foreach (var r in rows) table.AddRow(r.Select(Markup.Escape).ToArray());
        AnsiConsole.Write(table);
        foreach (var n in notes) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(n)}[/]");

        Directory.CreateDirectory(folder);
        var md = new StringBuilder($"### {title}\n\n| {string.Join(" | ", columns)} |\n|{string.Concat(columns.Select(_ => "---|"))}\n");
        foreach (var r in rows) md.Append($"| {string.Join(" | ", r)} |\n");
        md.Append('\n');
        foreach (var n in notes) md.Append($"- {n}\n");
        File.WriteAllText(Path.Combine(folder, name + ".md"), md.ToString());
        var json = new { name, title, columns, rows, notes, loadAtStart, loadAtEnd };
        File.WriteAllText(Path.Combine(folder, name + ".json"), JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
    }

    private static string Format(object cell) => cell switch
    {
        double d when double.IsNaN(d) => "–",
        double d when Math.Abs(d) >= 100 => d.ToString("N0", System.Globalization.CultureInfo.InvariantCulture),
        double d when Math.Abs(d) >= 10 => d.ToString("F1", System.Globalization.CultureInfo.InvariantCulture),
        double d => d.ToString("F3", System.Globalization.CultureInfo.InvariantCulture),
        _ => Convert.ToString(cell, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };
}
