using System.Runtime.CompilerServices;

namespace Microsoft.ML.MemoryFormer.Tests;

/// <summary>
/// With MEMORYFORMER_GC_STRESS=1 the test host collects generation 0 every millisecond on a background thread, so a
/// TorchSharp wrapper that becomes unreachable while libtorch still uses its handle is finalized mid-call far more
/// often than under normal allocation (see docs/reliability.md, "Finalizers and native calls").
/// </summary>
internal static class GcStress
{
    [ModuleInitializer]
    internal static void Start()
    {
        if (Environment.GetEnvironmentVariable("MEMORYFORMER_GC_STRESS") != "1")
            return;
        new Thread(() =>
        {
            while (true)
            {
                GC.Collect(0);
                Thread.Sleep(1);
            }
        }) { IsBackground = true, Name = "gc-stress" }.Start();
    }
}
