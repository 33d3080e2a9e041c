using Microsoft.ML.MemoryFormer.Data;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// Feature importance for one row of a <see cref="TabularEnsemblePredictor"/> by occlusion against background rows: the
/// row is scored as it is, and once for every (feature group, background row) with that group's values replaced by the
/// background row's; a group's contribution is the prediction minus the mean prediction with it replaced. A one-hot group
/// of the model (a categorical column) is replaced whole. Model-agnostic and deterministic; the sign hash has no
/// gradient to attribute through, so gradient methods do not apply.
/// </summary>
internal static class TabularOcclusion
{
    /// <summary>Rows scored per forward call (bounds the memory of one explanation, not its result).</summary>
    private const int ChunkRows = 4096;

    /// <summary>One explained row.</summary>
    /// <param name="Class">The class explained (null for regression).</param>
    /// <param name="Prediction">The row's probability of <paramref name="Class"/>, or its value (regression).</param>
    /// <param name="BackgroundPrediction">The mean of the same over the background rows.</param>
    /// <param name="Contributions">Per group: <paramref name="Prediction"/> minus the mean prediction with the group replaced.</param>
    public sealed record Result(int? Class, double Prediction, double BackgroundPrediction, double[] Contributions);

    /// <summary>
    /// Per input slot, its group, numbered 0, 1, … in slot order: the model's one-hot groups when it reads them as tokens
    /// (<see cref="TabularModelInfo.SlotTokens"/>); otherwise, with slot names, the runs of slots of one column (the name
    /// before the first '.', as <c>Concatenate</c> writes a vector column's slots) that are 0/1 and exclusive in
    /// <paramref name="background"/> [B·F] (<see cref="OneHotGroups.Find"/>): a one-hot column is replaced whole, never into
    /// a row with two categories or none. Every other slot is alone.
    /// </summary>
    public static int[] SlotGroups(TabularModelInfo info, float[] background, string[]? names)
    {
        int f = info.InputCount;
        if (info.SlotTokens is { } tokens) return tokens[..f];
        var groups = new int[f];
        var oneHot = names is null ? null : OneHotGroups.Find(background, f);
        for (int s = 1; s < f; s++)
        {
            bool together = oneHot is not null && oneHot[s] == oneHot[s - 1]
                && Column(names![s]) is { } column && column == Column(names[s - 1]);
            groups[s] = groups[s - 1] + (together ? 0 : 1);
        }
        return groups;
    }

    private static string? Column(string name) => name.IndexOf('.') is > 0 and var dot ? name[..dot] : null;

    /// <summary>
    /// Explains <paramref name="row"/> [F] against <paramref name="background"/> [B·F] (raw values, row-major; NaN = missing).
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="row">The row's raw features.</param>
    /// <param name="background">Background rows' raw features.</param>
    /// <param name="groups">Per slot, its group (<see cref="SlotGroups"/>).</param>
    /// <param name="classIndex">The class to explain; null: the predicted one (classification) or none (regression).</param>
    public static Result Explain(TabularEnsemblePredictor model, float[] row, float[] background, int[] groups, int? classIndex)
    {
        int f = row.Length, b = background.Length / f, groupCount = groups.Length == 0 ? 0 : groups[^1] + 1;
        bool regression = model.Info.Label.Kind == PredictionKind.Regression;

        // Rows scored: the row, the background rows, then per group its B occluded copies of the row.
        int total = 1 + b + groupCount * b;
        var values = new double[total];
        var outputs = Score(model, total, f, (r, into) =>
        {
            if (r == 0) row.CopyTo(into);
            else if (r <= b) background.AsSpan((r - 1) * f, f).CopyTo(into);
            else
            {
                int g = (r - 1 - b) / b, source = (r - 1 - b) % b;
                row.CopyTo(into);
                for (int s = 0; s < f; s++)
                    if (groups[s] == g) into[s] = background[source * f + s];
            }
        });

        int? target = regression ? null : classIndex ?? ArgMax(outputs[0]);
        for (int r = 0; r < total; r++) values[r] = regression ? outputs[r][0] : Math.Exp(outputs[r][target!.Value]);
        var contributions = new double[groupCount];
        for (int g = 0; g < groupCount; g++)
            contributions[g] = values[0] - Mean(values.AsSpan(1 + b + g * b, b));
        return new Result(target, values[0], Mean(values.AsSpan(1, b)), contributions);
    }

    /// <summary>Scores <paramref name="total"/> rows that <paramref name="fill"/> writes, <see cref="ChunkRows"/> at a time.</summary>
    private static float[][] Score(TabularEnsemblePredictor model, int total, int f, Action<int, Span<float>> fill)
    {
        var outputs = new float[total][];
        for (int start = 0; start < total; start += ChunkRows)
        {
            int n = Math.Min(ChunkRows, total - start);
            var features = new float[n * f];
            for (int r = 0; r < n; r++) fill(start + r, features.AsSpan(r * f, f));
            model.Forward(features, n).CopyTo(outputs, start);
        }
        return outputs;
    }

    private static int ArgMax(float[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }

    private static double Mean(ReadOnlySpan<double> values)
    {
        double sum = 0;
        foreach (double v in values) sum += v;
        return sum / values.Length;
    }
}
