namespace Microsoft.ML.MemoryFormer.Benchmarks.Serving;

/// <summary>What the clients of one (kind, client count) saw, summed over every cycle's phase; thread-safe.</summary>
internal sealed class PhaseStats(LoadKind kind, int clients)
{
    private readonly List<double> latencies = [], firstPieces = [];
    private long ok, errors, deliberate, aborted, units;
    private double seconds;

    public LoadKind Kind { get; } = kind;

    public int Clients { get; } = clients;

    public long Ok => Interlocked.Read(ref ok);

    public long Errors => Interlocked.Read(ref errors);

    public long Deliberate => Interlocked.Read(ref deliberate);

    public long Aborted => Interlocked.Read(ref aborted);

    /// <summary>Texts classified or tokens streamed by the completed requests.</summary>
    public long Units => Interlocked.Read(ref units);

    public double Seconds => seconds;

    public string? FirstError { get; private set; }

    public void Completed(double milliseconds, long unitCount, double? firstPieceMs)
    {
        Interlocked.Increment(ref ok);
        Interlocked.Add(ref units, unitCount);
        lock (latencies)
        {
            latencies.Add(milliseconds);
            if (firstPieceMs is { } f) firstPieces.Add(f);
        }
    }

    public void Failed(string what)
    {
        if (Interlocked.Increment(ref errors) == 1) FirstError = what;
    }

    public void DeliberatelyMalformed() => Interlocked.Increment(ref deliberate);

    public void AbortedByClient() => Interlocked.Increment(ref aborted);

    public void AddTime(TimeSpan elapsed) => seconds += elapsed.TotalSeconds;

    public double Percentile(double p, bool firstPiece = false)
    {
        lock (latencies)
        {
            var values = (firstPiece ? firstPieces : latencies).ToArray();
            if (values.Length == 0) return double.NaN;
            Array.Sort(values);
            return values[(int)Math.Min(values.Length - 1, Math.Floor(p * values.Length))];
        }
    }
}
