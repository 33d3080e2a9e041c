using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The torch device an ML.NET environment asks for (<see cref="MLContext.GpuDeviceId"/>, <see cref="MLContext.FallbackToCpu"/>).
/// Trainers receive the MLContext, loaders whatever environment ML.NET passes them; both read the preference through
/// <see cref="MLNetInternals.GetDevicePreference"/>, so every trainer and loader honours it.
/// </summary>
internal static class MLContextDevice
{
    public static Device Of(IHostEnvironment env)
    {
        var (gpuDeviceId, fallbackToCpu) = MLNetInternals.GetDevicePreference(env);
        return TorchRuntime.SelectDevice(gpuDeviceId, fallbackToCpu);
    }
}
