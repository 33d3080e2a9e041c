
namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>Reads the texts and labels of an <see cref="IDataView"/> into memory for training.</summary>
internal static class LabelledTextReader
{
    /// <summary>Rows with a label, with each row's weight from <paramref name="weightColumn"/> when it is given; rows whose
    /// label is missing (key 0) are skipped and counted.</summary>
    public static (LabelledTexts Data, int Skipped) Read(IDataView data, TextColumns texts, LabelColumn label, string? weightColumn = null)
    {
        if (weightColumn is not null) WeightColumn.Check(data.Schema, weightColumn);
        var columns = texts.In(data.Schema).Append(data.Schema[label.Name]);
        var rows = new List<(string, string?)>();
        var labels = new List<long>();
        var weights = weightColumn is null ? null : new List<float>();
        int skipped = 0;
        using var cursor = data.GetRowCursor(weightColumn is null ? columns : columns.Append(data.Schema[weightColumn]));
        var readText = texts.Reader(cursor);
        var readLabel = label.Reader(cursor);
        var readWeight = weightColumn is null ? null : WeightColumn.Reader(cursor, weightColumn);
        while (cursor.MoveNext())
        {
            long value = readLabel();
            if (value < 0) { skipped++; continue; }
            rows.Add(readText());
            labels.Add(value);
            if (readWeight is not null) weights!.Add(readWeight());
        }
        return (new LabelledTexts(rows, [.. labels], weights is null ? null : WeightColumn.Finish(weights, weightColumn!)), skipped);
    }

    /// <summary>Every row's texts, no label read (e.g. a classifier's outlier rows).</summary>
    public static (string Text, string? Second)[] ReadTexts(IDataView data, TextColumns texts)
    {
        var rows = new List<(string, string?)>();
        using var cursor = data.GetRowCursor(texts.In(data.Schema));
        var readText = texts.Reader(cursor);
        while (cursor.MoveNext())
            rows.Add(readText());
        return [.. rows];
    }
}
