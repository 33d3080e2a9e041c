namespace Microsoft.ML.MemoryFormer.Benchmarks; internal static class Program { private static int Main() => 0; }
