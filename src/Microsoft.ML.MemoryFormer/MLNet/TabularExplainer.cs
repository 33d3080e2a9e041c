using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The ML.NET side of <see cref="MemoryFormerTabularTransformer.Explain(IDataView, IDataView, int?, int)"/>: reads and checks the
/// rows and a sampled background from data views, groups and names the features by the feature column's slot names, and
/// turns <see cref="TabularOcclusion"/>'s contributions into <see cref="TabularExplanation"/>s.
/// </summary>
internal sealed class TabularExplainer(TabularEnsemblePredictor model)
{
    /// <summary>See <see cref="MemoryFormerTabularTransformer.Explain(IDataView, IDataView, int?, int)"/>.</summary>
    public IReadOnlyList<TabularExplanation> Explain(IDataView rows, IDataView background, int? classIndex, int maxBackgroundRows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var values = ReadFeatures(rows, "rows to explain", nameof(rows), long.MaxValue);
        return Explain(values, SlotNames(rows.Schema), background, classIndex, maxBackgroundRows);
    }

    /// <summary>See <see cref="MemoryFormerTabularTransformer.Explain(float[], IDataView, int?, int)"/>.</summary>
    public TabularExplanation Explain(float[] features, IDataView background, int? classIndex, int maxBackgroundRows)
    {
        ArgumentNullException.ThrowIfNull(features);
        var info = model.Info;
        if (features.Length != info.InputCount)
            throw new ArgumentException($"The row has {features.Length} values; the model's feature column '{info.FeatureColumnName}' " +
                $"has {info.InputCount} slots.", nameof(features));
        int infinite = Array.FindIndex(features, float.IsInfinity);
        if (infinite >= 0)
            throw new ArgumentException($"The row holds {features[infinite]} at slot {infinite}; expected finite values (NaN marks a missing value).", nameof(features));
        return Explain([(float[])features.Clone()], names: null, background, classIndex, maxBackgroundRows)[0];
    }

    private List<TabularExplanation> Explain(List<float[]> rows, string[]? names, IDataView background, int? classIndex, int maxBackgroundRows)
    {
        ArgumentNullException.ThrowIfNull(background);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBackgroundRows, 1);
        var info = model.Info;
        if (classIndex is int c && (info.Label.Kind == PredictionKind.Regression || c < 0 || c >= info.Label.Classes))
            throw new ArgumentOutOfRangeException(nameof(classIndex), c, info.Label.Kind == PredictionKind.Regression
                ? "A regression model has no classes; pass no class index."
                : $"The model has {info.Label.Classes} classes (0 to {info.Label.Classes - 1}).");
        var backgroundRows = ReadFeatures(background, "background data", nameof(background), maxBackgroundRows);
        if (backgroundRows.Count == 0)
            throw new ArgumentException($"The background data has no rows; pass typical rows with the '{info.FeatureColumnName}' " +
                "column, e.g. the training data.", nameof(background));
        names ??= SlotNames(background.Schema);
        var flat = backgroundRows.SelectMany(r => r).ToArray();
        var groups = TabularOcclusion.SlotGroups(info, flat, names);
        return [.. rows.Select(row => Describe(TabularOcclusion.Explain(model, row, flat, groups, classIndex), row, groups, names))];
    }

    private TabularExplanation Describe(TabularOcclusion.Result result, float[] row, int[] groups, string[]? names)
    {
        var features = new List<FeatureContribution>(result.Contributions.Length);
        for (int first = 0; first < groups.Length;)
        {
            int count = 1;
            while (first + count < groups.Length && groups[first + count] == groups[first]) count++;
            string name = GroupName(names, first, count);
            features.Add(new FeatureContribution(name, first, count, row[first..(first + count)],
                DisplayValue(row, names, name, first, count), result.Contributions[groups[first]]));
            first += count;
        }
        return new TabularExplanation(result.Class, result.Class is int c ? model.Info.Label.ClassName(c) : null,
            result.Prediction, result.BackgroundPrediction, features);
    }

    /// <summary>A feature's name: its slot name; the column name a one-hot group's slot names share before their last '.'
    /// in common; else the slot numbers.</summary>
    private static string GroupName(string[]? names, int first, int count)
    {
        string Slots() => count == 1 ? $"Slot {first}" : $"Slots {first}–{first + count - 1}";
        if (names is null || names.Skip(first).Take(count).Any(string.IsNullOrEmpty)) return Slots();
        if (count == 1) return names[first];
        int common = names[first].Length;
        for (int i = first + 1; i < first + count; i++)
            common = Math.Min(common, names[first].AsSpan().CommonPrefixLength(names[i]));
        int dot = names[first].LastIndexOf('.', Math.Max(common - 1, 0));
        return common > 0 && dot > 0 ? names[first][..dot] : Slots();
    }

    /// <summary>See <see cref="FeatureContribution.DisplayValue"/>.</summary>
    private static string DisplayValue(float[] row, string[]? names, string name, int first, int count)
    {
        static string Number(float v) => float.IsNaN(v) ? "missing" : v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture);
        if (count == 1) return Number(row[first]);
        if (names is null || names[first].Length <= name.Length || !names[first].StartsWith(name + ".", StringComparison.Ordinal))
            return string.Join(", ", row[first..(first + count)].Select(Number));
        int hot = Array.IndexOf(row, 1f, first, count);
        return hot < 0 ? "none" : names[hot][(name.Length + 1)..];
    }

    /// <summary>The feature column's slot names, or null when it has none.</summary>
    private string[]? SlotNames(DataViewSchema schema)
    {
        var column = schema.GetColumnOrNull(model.Info.FeatureColumnName);
        if (column?.Annotations.Schema.GetColumnOrNull("SlotNames") is null) return null;
        VBuffer<ReadOnlyMemory<char>> names = default;
        column.Value.GetSlotNames(ref names);
        return names.Length == model.Info.InputCount ? [.. names.DenseValues().Select(n => n.ToString())] : null;
    }

    /// <summary>The feature column of <paramref name="data"/>'s rows, checked: all of them, or a uniform sample of
    /// <paramref name="maxRows"/> when there are more.</summary>
    private List<float[]> ReadFeatures(IDataView data, string what, string parameter, long maxRows)
    {
        ArgumentNullException.ThrowIfNull(data, parameter);
        var info = model.Info;
        if (data.Schema.GetColumnOrNull(info.FeatureColumnName) is not { } column)
            throw new ArgumentException($"The {what} has no column '{info.FeatureColumnName}', the feature column the model was trained on; " +
                "featurize it with the training pipeline.", parameter);
        int slots = FeatureColumnReader.CheckFeatures(data.Schema, info.FeatureColumnName);
        if (slots != info.InputCount)
            throw new ArgumentException($"The {what}'s feature column '{info.FeatureColumnName}' has {slots} slots; the model was trained " +
                $"on {info.InputCount}. Featurize it with the training pipeline.", parameter);
        // Every row, or a uniform sample of maxRows of them (reservoir sampling, fixed seed: deterministic, one pass, and
        // representative of data sorted by class, which the first rows would not be).
        var rows = new List<float[]>();
        var random = new Random(0);
        using var cursor = data.GetRowCursor([column]);
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        VBuffer<float> buffer = default;
        for (long seen = 0; cursor.MoveNext(); seen++)
        {
            int slot = seen < maxRows ? rows.Count : (int)Math.Min(random.NextInt64(seen + 1), int.MaxValue);
            if (slot >= maxRows) continue;
            getter(ref buffer);
            var row = new float[slots];
            FeatureColumnReader.Dense(buffer, row, info.FeatureColumnName, cursor.Position);
            FeatureColumnReader.CheckFinite(row, info.FeatureColumnName, cursor.Position);
            if (slot == rows.Count) rows.Add(row);
            else rows[slot] = row;
        }
        return rows;
    }
}
