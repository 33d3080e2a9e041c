namespace WebApi;

/// <summary>
/// Process-wide counters of the serving pipeline, read by <c>GET /health</c> and by the tests: engines rented and
/// returned, generations started, completed, cancelled by the client and failed. All updates are atomic.
/// </summary>
public sealed class ServingCounters
{
    private long enginesCreated, enginesRented, enginesReturned;
    private long classifyRequests, textsClassified, rejectedRequests;
    private long generationsStarted, generationsCompleted, generationsCancelled, generationsFailed, tokensGenerated;

    internal void EngineCreated() => Interlocked.Increment(ref enginesCreated);

    internal void EngineRented() => Interlocked.Increment(ref enginesRented);

    internal void EngineReturned() => Interlocked.Increment(ref enginesReturned);

    internal void Classified(int texts)
    {
        Interlocked.Increment(ref classifyRequests);
        Interlocked.Add(ref textsClassified, texts);
    }

    internal void Rejected() => Interlocked.Increment(ref rejectedRequests);

    internal void GenerationStarted() => Interlocked.Increment(ref generationsStarted);

    internal void GenerationCompleted(int tokens)
    {
        Interlocked.Increment(ref generationsCompleted);
        Interlocked.Add(ref tokensGenerated, tokens);
    }

    internal void GenerationCancelled() => Interlocked.Increment(ref generationsCancelled);

    internal void GenerationFailed() => Interlocked.Increment(ref generationsFailed);

    /// <summary>A consistent-enough copy of every counter (each read atomically).</summary>
    public ServingCountersSnapshot Snapshot() => new(
        Interlocked.Read(ref enginesCreated), Interlocked.Read(ref enginesRented), Interlocked.Read(ref enginesReturned),
        Interlocked.Read(ref classifyRequests), Interlocked.Read(ref textsClassified), Interlocked.Read(ref rejectedRequests),
        Interlocked.Read(ref generationsStarted), Interlocked.Read(ref generationsCompleted),
        Interlocked.Read(ref generationsCancelled), Interlocked.Read(ref generationsFailed), Interlocked.Read(ref tokensGenerated));
}
