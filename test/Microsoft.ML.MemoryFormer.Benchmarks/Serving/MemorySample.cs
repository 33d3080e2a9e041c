namespace Microsoft.ML.MemoryFormer.Benchmarks.Serving;

/// <summary>The server's resident memory at one moment of the run.</summary>
/// <param name="Minute">Minutes since the load started.</param>
/// <param name="Cycle">The cycle of phases running (1-based).</param>
/// <param name="Phase">The phase running, e.g. "stream × 8".</param>
/// <param name="ResidentBytes">VmRSS of the server process.</param>
internal sealed record MemorySample(double Minute, int Cycle, string Phase, long ResidentBytes);
