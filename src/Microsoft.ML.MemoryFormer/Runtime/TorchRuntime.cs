using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// The one place that touches global torch state: loading the native library, choosing the device, seeding.
/// </summary>
public static class TorchRuntime
{
    private static readonly Lock Gate = new();
    private static bool loaded;

    /// <summary>
    /// Whether Memory Layers and the optimizer on the CPU use the library's fused managed SIMD kernels (sign hash and
    /// gather with custom backwards, single-pass AdamW). Default true. False runs plain libtorch ops (EmbeddingBag, the
    /// torch-ops hash and the torch-ops form of the same AdamW update): the reference the kernels are tested against,
    /// and what CUDA always uses. Stored in the kernels' one settings object, <see cref="KernelSettings"/>.
    /// </summary>
    public static bool UseFusedKernels
    {
        get => KernelSettings.Current.UseFusedKernels;
        set => KernelSettings.Current.UseFusedKernels = value;
    }

    /// <summary>
    /// Makes sure LibTorchSharp loads; turns the bare <see cref="DllNotFoundException"/> into an explanation.
    /// </summary>
    /// <exception cref="InvalidOperationException">The native library cannot be loaded.</exception>
    public static void EnsureAvailable()
    {
        if (loaded) return;
        lock (Gate)
        {
            if (loaded) return;
            try
            {
                using var probe = ones(1);
                loaded = true;
            }
            catch (Exception e) when (e is DllNotFoundException or TypeInitializationException)
            {
                throw new InvalidOperationException(NativeLoadMessage(e), e);
            }
        }
    }

    /// <summary>
    /// The device for training and inference, following ML.NET's convention: CUDA device
    /// <paramref name="gpuDeviceId"/> when asked for and available, the CPU otherwise when
    /// <paramref name="fallbackToCpu"/> is set, an error when it is not.
    /// </summary>
    public static Device SelectDevice(int? gpuDeviceId, bool fallbackToCpu)
    {
        EnsureAvailable();
        if (gpuDeviceId is null) return CPU;
        if (gpuDeviceId < 0)
            throw new ArgumentOutOfRangeException(nameof(gpuDeviceId), gpuDeviceId,
                "A GPU device id is 0 or more (MLContext.GpuDeviceId, or a Load call's gpuDeviceId); leave it null for the CPU.");
        if (cuda.is_available() && gpuDeviceId.Value < cuda.device_count())
            return new Device(DeviceType.CUDA, gpuDeviceId.Value);
        if (fallbackToCpu) return CPU;
        var unavailable = new InvalidOperationException(
            $"GPU device {gpuDeviceId} was asked for (MLContext.GpuDeviceId, or a Load call's gpuDeviceId) but CUDA is not available to TorchSharp (cuda.is_available() = " +
            $"{cuda.is_available()}, devices = {(cuda.is_available() ? cuda.device_count() : 0)}). Build with " +
            "-p:TorchBackend=cuda on a machine with an NVIDIA driver, or set MLContext.FallbackToCpu = true.");
        unavailable.Data[DeviceNotAvailable] = true;                                  // a setting to change, not damaged data (LoadChecked)
        throw unavailable;
    }

    /// <summary>The <see cref="Exception.Data"/> key that marks <see cref="SelectDevice"/>'s error for a GPU CUDA cannot give.</summary>
    public const string DeviceNotAvailable = "MemoryFormer.DeviceNotAvailable";

    /// <summary>Seeds torch's global generator so that initialisation and dropout are reproducible. Waits while a training
    /// in this process holds the generator (between its reseed and its last draw of a step), so the seed does not land in
    /// the middle of that training's draws; draws made after it still share the generator with any training running.</summary>
    public static void Seed(int seed)
    {
        using var lease = GeneratorLease.Seeded(seed);
    }

    private static string NativeLoadMessage(Exception e)
    {
        const string lib = "runtimes/linux-x64/native/libLibTorchSharp.so";
        var hint = RuntimeInformation.IsOSPlatform(OSPlatform.Linux)
            ? $"On Linux, TorchSharp 0.107's {lib} requires GLIBCXX_3.4.32 (GCC 13 libstdc++); Debian 12 ships " +
              "GLIBCXX_3.4.30. The Microsoft.ML.MemoryFormer package patches the copy in your output folder after " +
              "Build and Publish (target MemoryFormerPatchTorchSharpNative): rebuild the app that references it, make " +
              "sure MemoryFormerSkipNativeFix is not set, or install a libstdc++ from GCC 13 or newer. Also check that " +
              "the TorchSharp-cpu (or TorchSharp-cuda-linux) package is referenced so the native files are copied."
            : "Check that the TorchSharp-cpu (or a TorchSharp-cuda) package is referenced so the native files are copied.";
        return $"TorchSharp's native library LibTorchSharp could not be loaded ({e.GetBaseException().Message}). {hint}";
    }
}
