namespace WebApi;

/// <summary>The values of <see cref="ServingCounters"/> at one moment.</summary>
/// <param name="EnginesCreated">Classifier prediction engines the pool has created.</param>
/// <param name="EnginesRented">Times an engine was taken from the pool.</param>
/// <param name="EnginesReturned">Times an engine went back to the pool; equals <paramref name="EnginesRented"/> when no request is classifying.</param>
/// <param name="ClassifyRequests">Classification requests answered with 200.</param>
/// <param name="TextsClassified">Texts classified in those requests.</param>
/// <param name="RejectedRequests">Requests refused with a 4xx problem (bad JSON, failed validation, too large).</param>
/// <param name="GenerationsStarted">Generations (plain and streamed) that got a slot and started.</param>
/// <param name="GenerationsCompleted">Generations that ran to their end.</param>
/// <param name="GenerationsCancelled">Generations stopped because the client went away.</param>
/// <param name="GenerationsFailed">Generations that ended with another error.</param>
/// <param name="TokensGenerated">Tokens of the completed generations.</param>
public sealed record ServingCountersSnapshot(
    long EnginesCreated, long EnginesRented, long EnginesReturned,
    long ClassifyRequests, long TextsClassified, long RejectedRequests,
    long GenerationsStarted, long GenerationsCompleted, long GenerationsCancelled, long GenerationsFailed, long TokensGenerated)
{
    /// <summary>Engines rented and not yet returned.</summary>
    public long EnginesInUse => EnginesRented - EnginesReturned;

    /// <summary>Generations started and not yet ended one way or another.</summary>
    public long GenerationsRunning => GenerationsStarted - GenerationsCompleted - GenerationsCancelled - GenerationsFailed;
}
