using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Raw pointers into contiguous CPU tensors for the managed kernels. TorchSharp 0.107 has no <c>data_ptr()</c>;
/// <c>tensor.bytes</c> is a writable span over the tensor's native storage, which never moves, so taking its
/// address needs no pinning.
/// </summary>
internal static unsafe class TensorMemory
{
    /// <summary>Address of the first element of a contiguous CPU tensor.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void* Address(torch.Tensor tensor)
    {
        return Unsafe.AsPointer(ref MemoryMarshal.GetReference(tensor.bytes));
    }

    /// <summary>The address of a contiguous CPU float32 tensor as a number: an identity for its storage that code outside
    /// this folder can use as a key without <c>unsafe</c>.</summary>
    public static nint Key(torch.Tensor tensor) => (nint)Floats(tensor);

    /// <summary>Address of a contiguous CPU float32 tensor.</summary>
    public static float* Floats(torch.Tensor tensor)
    {
        if (tensor.dtype != torch.ScalarType.Float32)
            throw new ArgumentException($"Expected float32, got {tensor.dtype}.", nameof(tensor));
        return (float*)Address(tensor);
    }

    /// <summary>Address of a contiguous CPU int64 tensor.</summary>
    public static long* Longs(torch.Tensor tensor)
    {
        if (tensor.dtype != torch.ScalarType.Int64)
            throw new ArgumentException($"Expected int64, got {tensor.dtype}.", nameof(tensor));
        return (long*)Address(tensor);
    }

    /// <summary>True for a float32 tensor on the CPU, the only case the managed kernels handle.</summary>
    public static bool IsCpuFloat32(torch.Tensor tensor)
    {
        return tensor.device_type == DeviceType.CPU && tensor.dtype == torch.ScalarType.Float32;
    }
}
