using System.Globalization;
using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>
/// <c>tabular --save-predictions</c>: writes a binary contender's scored rows as "label probability" lines
/// (<c>{set}-{model}.txt</c>, the format <c>--seed-spread</c> writes per seed) and, once per set, the scored rows' raw
/// numeric and text columns (<c>{set}-rows.tsv</c>), so that where two models disagree can be read row by row.
/// </summary>
internal static class TabularPredictions
{
    public static void Save(string folder, string set, string model, IDataView scored)
    {
        Directory.CreateDirectory(folder);
        var labels = scored.GetColumn<bool>("Label").ToArray();
        var probabilities = scored.GetColumn<float>("Probability").ToArray();
        File.WriteAllLines(Path.Combine(folder, $"{set}-{model}.txt"), labels.Zip(probabilities)
            .Select(p => string.Create(CultureInfo.InvariantCulture, $"{(p.First ? 1 : 0)} {p.Second:R}")));
        var rows = Path.Combine(folder, $"{set}-rows.tsv");
        if (!File.Exists(rows)) File.WriteAllLines(rows, RawColumns(scored));
    }

    /// <summary>A header and one tab-separated line per row of the scalar float and text columns that are not scores.</summary>
    private static IEnumerable<string> RawColumns(IDataView scored)
    {
        var columns = scored.Schema.Where(c => !c.IsHidden && c.Type is NumberDataViewType or TextDataViewType
            && c.Name is not ("Score" or "Probability" or "Label")).ToArray();
        var values = columns.Select(c => c.Type is TextDataViewType
            ? scored.GetColumn<ReadOnlyMemory<char>>(c.Name).Select(v => v.ToString()).ToArray()
            : scored.GetColumn<float>(c.Name).Select(v => v.ToString("R", CultureInfo.InvariantCulture)).ToArray()).ToArray();
        yield return string.Join('\t', columns.Select(c => c.Name));
        for (int r = 0; r < values[0].Length; r++) yield return string.Join('\t', values.Select(v => v[r]));
    }
}
