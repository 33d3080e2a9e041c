namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// The frequent values of one numeric slot that also become categories: a row whose value equals <see cref="Values"/>[i]
/// gets a 1 in the i-th of <see cref="Values"/>.Length appended one-hot slots (0 in all of them for any other value or
/// NaN), which the tokenizer then reads as one categorical token. Found on the raw training rows by <see cref="Find"/>.
/// </summary>
/// <param name="Slot">The numeric slot of the input vector.</param>
/// <param name="Values">Its category values, ascending.</param>
internal sealed record ValueCategories(int Slot, float[] Values)
{
    /// <summary>Most categories one slot may get (a bound on the option and against hostile files).</summary>
    public const int MaxValues = 256;

    /// <summary>A slot whose most frequent value covers at least this share of the non-missing training rows is a spike
    /// column (adult's capital-gain is 0 in 92 % of the rows).</summary>
    public const double SpikeShare = 0.5;

    /// <summary>
    /// The slots of <paramref name="features"/> [N, F] (raw training rows) that qualify — not 0/1-valued, and either at
    /// most <paramref name="maxDistinct"/> distinct values or a spike (<see cref="SpikeShare"/>) — each with its values
    /// held by at least <paramref name="minRows"/> rows (the <see cref="MaxValues"/> most frequent). Slots left with
    /// fewer than two such values are skipped. Deterministic: depends only on the values.
    /// </summary>
    public static ValueCategories[] Find(float[] features, int featureCount, int maxDistinct, int minRows)
    {
        int rows = featureCount == 0 ? 0 : features.Length / featureCount;
        var found = new List<ValueCategories>();
        for (int slot = 0; slot < featureCount; slot++)
        {
            var counts = new Dictionary<float, int>();
            int present = 0;
            for (int r = 0; r < rows; r++)
            {
                float v = features[r * featureCount + slot];
                if (float.IsNaN(v)) continue;
                counts[v] = counts.GetValueOrDefault(v) + 1;
                present++;
            }
            if (present == 0 || counts.Keys.All(v => v is 0f or 1f)) continue;
            bool spike = counts.Values.Max() >= SpikeShare * present;
            if (counts.Count > maxDistinct && !spike) continue;
            var values = counts.Where(c => c.Value >= minRows).OrderByDescending(c => c.Value).ThenBy(c => c.Key)
                .Take(MaxValues).Select(c => c.Key).Order().ToArray();
            if (values.Length >= 2) found.Add(new ValueCategories(slot, values));
        }
        return [.. found];
    }

    /// <summary>Writes the one-hot of <paramref name="value"/> into <paramref name="output"/> [Values.Length].</summary>
    public void Encode(float value, Span<float> output)
    {
        output.Clear();
        int i = Array.BinarySearch(Values, value);
        if (i >= 0 && !float.IsNaN(value)) output[i] = 1f;
    }

    /// <summary>Whether this record fits an input of <paramref name="inputCount"/> slots (a damaged file is refused).</summary>
    public bool IsValid(int inputCount) =>
        Slot >= 0 && Slot < inputCount && Values is { Length: >= 1 and <= MaxValues }
        && Values.All(float.IsFinite) && Values.Zip(Values.Skip(1)).All(p => p.First < p.Second);
}
