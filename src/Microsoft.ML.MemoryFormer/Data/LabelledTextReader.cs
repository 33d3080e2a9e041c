
namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>Reads the texts and labels of an <see cref="IDataView"/> into memory for training.</summary>
internal static class LabelledTextReader
{
    /// <summary>Rows with a label; rows whose label is missing (key 0) are skipped and counted.</summary>
    public static (LabelledTexts Data, int Skipped) Read(IDataView data, TextColumns texts, LabelColumn label)
    {
        var columns = texts.In(data.Schema).Append(data.Schema[label.Name]).ToArray();
        var rows = new List<(string, string?)>();
        var labels = new List<long>();
        int skipped = 0;
        using var cursor = data.GetRowCursor(columns);
        var readText = texts.Reader(cursor);
        var readLabel = label.Reader(cursor);
        while (cursor.MoveNext())
        {
            long value = readLabel();
            if (value < 0) { skipped++; continue; }
            rows.Add(readText());
            labels.Add(value);
        }
        return (new LabelledTexts(rows, [.. labels]), skipped);
    }
}
