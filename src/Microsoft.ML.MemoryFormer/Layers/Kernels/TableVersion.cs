using System.Runtime.InteropServices;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// libtorch's version counter of a tensor (PyTorch's <c>tensor._version</c>), which every in-place torch op bumps (copy_,
/// normal_, a torch-ops optimizer step, a user's edit under no_grad), and a way for the managed kernels, whose raw writes
/// torch does not see, to bump it themselves. <see cref="Bf16TableCopy"/> keys its validity on it. TorchSharp 0.107 exposes
/// neither, so both are libtorch's exported C++ functions (<c>at::TensorBase::_version() const</c> and
/// <c>torch::autograd::impl::bump_version(const at::Tensor&amp;)</c>), called with TorchSharp's handle, which points to an
/// <c>at::Tensor</c>. Where they cannot be found (another ABI), <see cref="IsAvailable"/> is false and callers do without.
/// </summary>
internal static class TableVersion
{
    private static readonly unsafe delegate* unmanaged<nint, long> Read;
    private static readonly unsafe delegate* unmanaged<nint, void> Increment;

    static unsafe TableVersion()
    {
        if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad("libtorch_cpu.so", typeof(torch).Assembly, null, out var library))
            return;
        if (NativeLibrary.TryGetExport(library, "_ZNK2at10TensorBase8_versionEv", out var read)
            && NativeLibrary.TryGetExport(library, "_ZN5torch8autograd4impl12bump_versionERKN2at6TensorE", out var bump))
        {
            Read = (delegate* unmanaged<nint, long>)read;
            Increment = (delegate* unmanaged<nint, void>)bump;
        }
    }

    /// <summary>True when this process can read and bump version counters.</summary>
    public static unsafe bool IsAvailable => Read != null;

    /// <summary>The version counter of <paramref name="tensor"/> (shared with its views), or -1 where unavailable.</summary>
    public static unsafe long Of(torch.Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return Read == null ? -1 : Read(tensor.Handle);
    }

    /// <summary>Marks every parameter of <paramref name="module"/> as changed: after TorchSharp's <c>module.load</c>, which writes
    /// the stored bytes into each parameter's storage without an in-place op.</summary>
    public static void BumpAll(torch.nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        foreach (var p in module.parameters())
            Bump(p);
    }

    /// <summary>Marks <paramref name="tensor"/> as changed after a raw write (a managed kernel's optimizer step, a raw load).</summary>
    public static unsafe void Bump(torch.Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (Increment != null)
            Increment(tensor.Handle);
    }
}
