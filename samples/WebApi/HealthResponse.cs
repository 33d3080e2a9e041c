namespace WebApi;

/// <summary>Answer of <c>GET /health</c>: the models served, the counters and the process's memory.</summary>
/// <param name="Status">"ok" once both models are loaded (the app does not listen before).</param>
/// <param name="Classes">The classifier's class names.</param>
/// <param name="GenerationSlotsInUse">Generations running now.</param>
/// <param name="Counters">The serving counters.</param>
/// <param name="WorkingSetBytes">The process's resident memory.</param>
/// <param name="ManagedHeapBytes">The managed heap in use.</param>
public sealed record HealthResponse(string Status, IReadOnlyList<string> Classes, int GenerationSlotsInUse,
    ServingCountersSnapshot Counters, long WorkingSetBytes, long ManagedHeapBytes);
