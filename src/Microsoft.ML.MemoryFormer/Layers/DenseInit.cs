using TorchSharp;
using TorchSharp.Modules;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>GPT-2 style init of the dense baseline's linear layers: weights N(0, std²), zero bias.</summary>
internal static class DenseInit
{
    public static void Normal(Linear layer, double std)
    {
        using var _ = torch.no_grad();
        layer.weight!.normal_(0, std);
        layer.bias?.zero_();
    }
}
