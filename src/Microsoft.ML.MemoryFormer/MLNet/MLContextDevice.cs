using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>The torch device an MLContext asks for (<see cref="MLContext.GpuDeviceId"/>, <see cref="MLContext.FallbackToCpu"/>).</summary>
internal static class MLContextDevice
{
    public static Device Of(IHostEnvironment env) =>
        env is MLContext ml ? TorchRuntime.SelectDevice(ml.GpuDeviceId, ml.FallbackToCpu) : TorchRuntime.SelectDevice(null, true);
}
