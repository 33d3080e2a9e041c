namespace Microsoft.ML.MemoryFormer.Benchmarks.Soak;

/// <summary>One minute of the soak: where training was and what the process held.</summary>
internal sealed record SoakSample(double Minute, int Step, double Loss, double TokensPerSecond, long WorkingSetBytes,
    long PrivateBytes, long ManagedBytes);
