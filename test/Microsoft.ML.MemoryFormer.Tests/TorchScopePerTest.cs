using System.Reflection;
using TorchSharp;
using Xunit.Sdk;

namespace Microsoft.ML.MemoryFormer.Tests;

/// <summary>
/// Runs every test inside a TorchSharp dispose scope on the test's thread. TorchSharp 0.107 frees a tensor's native
/// handle in its finalizer, and its ops do not keep their operands reachable during the native call: a temporary in a
/// chain such as <c>(a - b).abs().max()</c> is unreachable while libtorch still reads it, and a garbage collection that
/// another thread starts at that moment (xunit's message bus, a server test's threads) lets the finalizer free it
/// mid-call — the rare native crash of the test host. A scope holds every tensor the test creates until the test ends,
/// so none of them is finalized early; docs/reliability.md ("Finalizers and native calls") has the details.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly)]
internal sealed class TorchScopePerTestAttribute : BeforeAfterTestAttribute
{
    [ThreadStatic]
    private static DisposeScope? scope;

    public override void Before(MethodInfo methodUnderTest)
    {
        scope?.Dispose();                                                      // left by a test whose After ran on another thread
        scope = methodUnderTest.IsDefined(typeof(WithoutTorchScopeAttribute)) ? null : torch.NewDisposeScope();
    }

    public override void After(MethodInfo methodUnderTest)
    {
        scope?.Dispose();
        scope = null;
    }
}

/// <summary>Runs a test without <see cref="TorchScopePerTestAttribute"/>'s scope: for tests that measure when native memory
/// is released, which a scope holding every tensor wrapper until the test ends would hide.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class WithoutTorchScopeAttribute : Attribute
{
}
