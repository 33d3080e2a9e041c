namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// A stratified, seeded hold-out of rows for fitting the softmax temperature only: of each class's n rows,
/// round(n × fraction) are held out, but never the class's last row, so every class keeps at least one training row.
/// Both index lists are in ascending row order, so the kept rows are trained on in their original order. A split
/// that would hold out fewer than <see cref="MinimumRowsPerClass"/> rows per class on average is not made: one
/// temperature fitted on a handful of rows is noise, and the refit would double the training time for nothing.
/// </summary>
/// <param name="Kept">Rows to train on.</param>
/// <param name="Held">Rows held out to fit the temperature.</param>
internal sealed record CalibrationSplit(int[] Kept, int[] Held)
{
    /// <summary>Fewest held-out rows per class (on average over the classes) for a split to be made.</summary>
    public const int MinimumRowsPerClass = 2;

    /// <summary>The split, or null when it would hold out fewer than <see cref="MinimumRowsPerClass"/> × classes rows.</summary>
    public static CalibrationSplit? Of(long[] labels, int classes, double fraction, int seed)
    {
        var random = new Random(seed);
        var held = new List<int>();
        for (int c = 0; c < classes; c++)
        {
            var rows = Enumerable.Range(0, labels.Length).Where(r => labels[r] == c).ToArray();
            random.Shuffle(rows);
            held.AddRange(rows.Take(Math.Min((int)Math.Round(rows.Length * fraction), rows.Length - 1)));
        }
        if (held.Count == 0 || held.Count < MinimumRowsPerClass * classes) return null;
        var isHeld = new bool[labels.Length];
        foreach (int r in held) isHeld[r] = true;
        return new CalibrationSplit(Enumerable.Range(0, labels.Length).Where(r => !isHeld[r]).ToArray(), held.Order().ToArray());
    }
}
