using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// The dense baseline's Linear layers, in fp32 or — with <see cref="KernelSettings.Bf16DenseLinear"/> on, on the CPU —
/// in bf16 with the fp32 weights as masters, as torch autocast computes a linear layer: x, W and b cast to bf16 inside
/// the graph (W once per call, so once per training step), a bf16 GEMM, the gradients flowing back through the casts
/// to the fp32 input and parameters. TorchSharp exposes no autocast, so the casts are written out here.
/// </summary>
internal static class DenseLinear
{
    /// <summary>Whether <see cref="Apply"/> computes in bf16 for an input on <paramref name="x"/>'s device.</summary>
    public static bool UsesBf16(Tensor x) => KernelSettings.Current.Bf16DenseLinear && x.device_type == TorchSharp.DeviceType.CPU;

    /// <summary>x [.., in] (fp32, or bf16 from an earlier bf16 layer) → [.., out]: <paramref name="layer"/>'s output, in fp32
    /// unless <paramref name="keepBf16"/> asks for the bf16 result (autocast's dtype, for a bf16 consumer such as GELU).</summary>
    public static Tensor Apply(Linear layer, Tensor x, bool keepBf16 = false)
    {
        if (!UsesBf16(x))
            return layer.call(x);                                                // [.., out] fp32
        var y = F.linear(x.to(ScalarType.BFloat16), layer.weight!.to(ScalarType.BFloat16),
            layer.bias?.to(ScalarType.BFloat16));                               // [.., out] bf16
        return keepBf16 ? y : y.to(ScalarType.Float32);
    }
}
