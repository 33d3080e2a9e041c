namespace Microsoft.ML.MemoryFormer.Benchmarks.Serving;

/// <summary>What the clients of a load phase request.</summary>
internal enum LoadKind
{
    /// <summary><c>POST /classify</c> with a batch of texts.</summary>
    Classify,

    /// <summary><c>POST /generate/stream</c>, read as server-sent events.</summary>
    Stream,
}
