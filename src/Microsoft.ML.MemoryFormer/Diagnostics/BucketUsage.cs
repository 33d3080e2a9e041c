namespace Microsoft.ML.MemoryFormer.Diagnostics;

/// <summary>
/// Bucket health of one Memory Layer (the paper's Fig. 4): how often each row of each of its K tables of 2^τ rows was
/// selected by the hash, the fraction of rows never selected, and the normalised entropy of each table's hit
/// distribution (1 = every row equally often, 0 = one row takes every hit). Produced by <see cref="BucketUsageRecorder"/>.
/// </summary>
/// <remarks>Q, K and V read their tables with one shared hash of the same input, so the three have the same usage and
/// are reported once, under the name of the attention's Q/K/V module.</remarks>
public sealed class BucketUsage
{
    private readonly long[] counts;

    /// <summary>Creates the statistics of a layer from its flat hit counts (table k owns rows k·2^τ … (k+1)·2^τ − 1).</summary>
    /// <param name="layer">The layer's name, e.g. <c>backbone.blocks.0.ffn.expand</c>.</param>
    /// <param name="tableCount">K, the number of tables.</param>
    /// <param name="rowsPerTable">2^τ, rows per table.</param>
    /// <param name="counts">Hits per row, K·2^τ non-negative values.</param>
    /// <exception cref="ArgumentException">The counts do not have K·2^τ entries or one is negative.</exception>
    public BucketUsage(string layer, int tableCount, int rowsPerTable, IReadOnlyList<long> counts)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(counts);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tableCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowsPerTable);
        if (counts.Count != (long)tableCount * rowsPerTable)
            throw new ArgumentException($"Bucket usage of '{layer}': expected K·2^τ = {tableCount}·{rowsPerTable} = " +
                $"{(long)tableCount * rowsPerTable} counts, got {counts.Count}.", nameof(counts));
        if (counts.Any(c => c < 0))
            throw new ArgumentException($"Bucket usage of '{layer}': hit counts must be ≥ 0.", nameof(counts));
        Layer = layer;
        TableCount = tableCount;
        RowsPerTable = rowsPerTable;
        this.counts = [.. counts];
        TotalHits = this.counts.Sum();
    }

    /// <summary>The layer's name in the model (its module path).</summary>
    public string Layer { get; }

    /// <summary>K, the number of tables.</summary>
    public int TableCount { get; }

    /// <summary>2^τ, the rows of each table.</summary>
    public int RowsPerTable { get; }

    /// <summary>All hit counts, table after table (K·2^τ values).</summary>
    public IReadOnlyList<long> Counts => counts;

    /// <summary>Hits over all tables (N tokens hashed make N·K hits).</summary>
    public long TotalHits { get; }

    /// <summary>Hit counts of table <paramref name="table"/> (2^τ values).</summary>
    public ReadOnlySpan<long> TableCounts(int table)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(table);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(table, TableCount);
        return counts.AsSpan(table * RowsPerTable, RowsPerTable);
    }

    /// <summary>Fraction of table <paramref name="table"/>'s rows never selected.</summary>
    public double NeverHitFractionOf(int table) => NeverHitFraction(TableCounts(table));

    /// <summary>Normalised entropy of table <paramref name="table"/>'s hits (see <see cref="NormalisedEntropy"/>).</summary>
    public double NormalisedEntropyOf(int table) => NormalisedEntropy(TableCounts(table));

    /// <summary>Fraction of all the layer's rows never selected.</summary>
    public double NeverHitFraction() => NeverHitFraction(counts);

    /// <summary>Mean over the K tables of their normalised entropy.</summary>
    public double MeanNormalisedEntropy() =>
        Enumerable.Range(0, TableCount).Average(NormalisedEntropyOf);

    /// <summary>Fraction of the entries of <paramref name="counts"/> that are zero (0 for an empty span).</summary>
    public static double NeverHitFraction(ReadOnlySpan<long> counts)
    {
        if (counts.IsEmpty) return 0;
        int never = 0;
        foreach (long c in counts)
            if (c == 0) never++;
        return (double)never / counts.Length;
    }

    /// <summary>
    /// Shannon entropy of the distribution p_i = c_i / Σc, divided by its maximum ln(n): 1 when all n rows are hit
    /// equally often, 0 when a single row takes every hit. Defined as 0 when nothing was hit or n = 1.
    /// </summary>
    public static double NormalisedEntropy(ReadOnlySpan<long> counts)
    {
        double total = 0;
        foreach (long c in counts) total += c;
        if (total <= 0 || counts.Length < 2) return 0;
        double h = 0;
        foreach (long c in counts)
        {
            if (c == 0) continue;
            double p = c / total;
            h -= p * Math.Log(p);
        }
        return h / Math.Log(counts.Length);
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{Layer}: {TotalHits} hits, never hit {NeverHitFraction():P1}, entropy {MeanNormalisedEntropy():F3}");
}
