namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// How well a multiclass model's confidence (the largest class probability of its <c>Score</c> vector) tells rows of its
/// classes (in scope) from rows of none of them (out of scope: an intent classifier's "none of the above" queries), and
/// what rejecting rows below a confidence threshold costs: the counterpart of ML.NET's multiclass metrics for a model
/// that must also say "I don't know". From <see cref="OutOfScopeCatalogExtensions.EvaluateOutOfScope"/>.
/// </summary>
/// <remarks>A row is accepted when its confidence is at least <see cref="Threshold"/> and rejected otherwise; a NaN
/// confidence counts as the lowest.</remarks>
public sealed class OutOfScopeMetrics
{
    internal OutOfScopeMetrics(float threshold, double areaUnderRocCurve, double inScopeRecall, double inScopeAccuracy,
        double acceptedAccuracy, double outOfScopeRecall, long inScopeRows, long outOfScopeRows)
    {
        Threshold = threshold;
        AreaUnderRocCurve = areaUnderRocCurve;
        InScopeRecall = inScopeRecall;
        InScopeAccuracy = inScopeAccuracy;
        AcceptedAccuracy = acceptedAccuracy;
        OutOfScopeRecall = outOfScopeRecall;
        InScopeRows = inScopeRows;
        OutOfScopeRows = outOfScopeRows;
    }

    /// <summary>The confidence from which a row is accepted (given, or fitted on the in-scope rows).</summary>
    public float Threshold { get; }

    /// <summary>The probability that a random in-scope row gets a higher confidence than a random out-of-scope row
    /// (ties count one half): 1 separates them perfectly, 0.5 is chance. Does not depend on the threshold.</summary>
    public double AreaUnderRocCurve { get; }

    /// <summary>The fraction of in-scope rows accepted.</summary>
    public double InScopeRecall { get; }

    /// <summary>The fraction of in-scope rows accepted <em>and</em> given their own class (a rejected row counts as an error):
    /// the in-scope accuracy that out-of-scope benchmarks such as CLINC150's report next to <see cref="OutOfScopeRecall"/>.</summary>
    public double InScopeAccuracy { get; }

    /// <summary>Among the in-scope rows accepted, the fraction given their own class (NaN when none is accepted).</summary>
    public double AcceptedAccuracy { get; }

    /// <summary>The fraction of out-of-scope rows rejected.</summary>
    public double OutOfScopeRecall { get; }

    /// <summary>In-scope rows evaluated.</summary>
    public long InScopeRows { get; }

    /// <summary>Out-of-scope rows evaluated.</summary>
    public long OutOfScopeRows { get; }

    /// <summary>The largest threshold that accepts at least <paramref name="recall"/> of rows with these confidences.</summary>
    internal static float ThresholdFor(float[] confidences, double recall)
    {
        var sorted = confidences.Select(Rank).OrderByDescending(c => c).ToArray();
        int keep = Math.Max(1, (int)Math.Ceiling((recall * sorted.Length) - 1e-9));
        return sorted[Math.Min(keep, sorted.Length) - 1];
    }

    /// <summary>The metrics from each in-scope row's confidence and whether its predicted class is its label, and each
    /// out-of-scope row's confidence.</summary>
    internal static OutOfScopeMetrics From(float[] inScope, bool[] correct, float[] outOfScope, float threshold)
    {
        long accepted = inScope.Count(c => Rank(c) >= threshold);
        long acceptedCorrect = inScope.Where((c, i) => correct[i] && Rank(c) >= threshold).LongCount();
        long rejected = outOfScope.Count(c => Rank(c) < threshold);
        return new OutOfScopeMetrics(threshold, AreaUnderCurve(inScope, outOfScope), (double)accepted / inScope.Length,
            (double)acceptedCorrect / inScope.Length, accepted == 0 ? double.NaN : (double)acceptedCorrect / accepted,
            (double)rejected / outOfScope.Length, inScope.Length, outOfScope.Length);
    }

    /// <summary>The Mann–Whitney statistic: P(in-scope confidence &gt; out-of-scope confidence) + ½ P(equal), by one sort.</summary>
    private static double AreaUnderCurve(float[] inScope, float[] outOfScope)
    {
        var all = inScope.Select(c => (Value: Rank(c), InScope: true)).Concat(outOfScope.Select(c => (Value: Rank(c), InScope: false)))
            .OrderBy(p => p.Value).ToArray();
        double wins = 0;
        long outBelow = 0;
        for (int i = 0; i < all.Length;)
        {
            int j = i;
            long ins = 0, outs = 0;
            for (; j < all.Length && all[j].Value == all[i].Value; j++)
                if (all[j].InScope) ins++; else outs++;
            wins += ins * (outBelow + (0.5 * outs));                     // out-of-scope rows below this value, and half the ties
            outBelow += outs;
            i = j;
        }
        return wins / ((double)inScope.Length * outOfScope.Length);
    }

    /// <summary>A confidence for ordering: NaN below every number.</summary>
    private static float Rank(float confidence) => float.IsNaN(confidence) ? float.NegativeInfinity : confidence;
}
