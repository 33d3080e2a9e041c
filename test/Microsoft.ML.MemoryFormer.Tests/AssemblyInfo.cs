// Torch's global generator and thread pool are process-wide: run test classes one after another so that seeded
// tests are reproducible and timings of one test do not starve another on the 2-core CI machine.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

// Every test runs inside a TorchSharp dispose scope (TorchScopePerTest.cs): temporaries stay reachable until the test ends.
[assembly: Microsoft.ML.MemoryFormer.Tests.TorchScopePerTest]
