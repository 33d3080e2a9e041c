using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// Keeps TorchSharp wrappers reachable while libtorch uses them. TorchSharp 0.107 frees a tensor's native handle in the
/// wrapper's finalizer, and its ops do not keep their operands reachable during the native call: in <c>a.add(b).exp()</c>
/// the intermediate is unreachable while <c>exp</c> runs, and a garbage collection that another thread starts at that
/// moment lets the finalizer free it mid-call — a use-after-free inside libtorch (a rare native crash, or wrong values).
/// A dispose scope holds every tensor created on its thread until it ends, so every entry point of the library that
/// calls torch (Fit, loading, scoring, generation, evaluation) runs inside one; scalars, which no scope tracks, are
/// <see cref="LiveScalars"/> or named <c>using</c> locals. docs/reliability.md, "Finalizers and native calls", has the details.
/// </summary>
internal static class TorchScope
{
    /// <summary>
    /// Detaches <paramref name="module"/>'s parameters and buffers from any dispose scope, so that the scope around the
    /// code that built the module can end without disposing it (a <c>Parameter</c> joins the scope of the tensor it was
    /// made from). The top-level models call it at the end of their constructors.
    /// </summary>
    /// <remarks>TorchSharp 0.107's <c>buffers()</c> leaves out non-persistent buffers, so a module detaches those itself
    /// where it makes them (the rotary tables in <c>Layers/RotaryEmbedding.cs</c>).</remarks>
    public static void Keep(torch.nn.Module module)
    {
        foreach (var parameter in module.parameters())
            parameter.DetachFromDisposeScope();
        foreach (var buffer in module.buffers())
            buffer.DetachFromDisposeScope();
    }
}
