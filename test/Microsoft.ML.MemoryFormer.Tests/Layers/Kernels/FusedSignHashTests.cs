using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The managed sign hash against the torch-ops reference: rows, weights and ∂L/∂x.</summary>
public class FusedSignHashTests
{
    /// <summary>Random x [n, k·τ] with some exact zeros, and a random upstream gradient for the weights.</summary>
    private static (Tensor X, Tensor Upstream) Inputs(int n, int k, int bits, long seed)
    {
        var gen = new Generator((ulong)seed);
        var x = randn([n, k * bits], generator: gen);
        x[0, 0] = tensor(0f);
        x[n - 1, (k * bits) - 1] = tensor(0f);
        x[n / 2] = zeros(k * bits);                                      // a whole row of zeros
        return (x, randn([n, k], generator: gen));
    }

    [Theory]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 8, 4)]
    [InlineData(HashWeightFunction.SigmoidProduct, 0.7, 8, 4)]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 10, 3)]
    [InlineData(HashWeightFunction.SigmoidProduct, 2.0, 5, 7)]
    public void Rows_weights_and_input_gradient_equal_the_torch_ops_path(HashWeightFunction function, double t, int bits, int k)
    {
        var (x, upstream) = Inputs(37, k, bits, seed: bits * 10 + k);
        var xf = x.clone().requires_grad_(true);
        var xr = x.clone().requires_grad_(true);

        var fused = FusedSignHash.Compute(xf, bits, function, t);
        var reference = SignHash.Reference(xr, bits, function, t);
        (fused.Weights * upstream).sum().backward();
        (reference.Weights * upstream).sum().backward();

        Assert.True((fused.Rows == reference.Rows).all().item<bool>(), "rows differ");
        Assert.Equal(ScalarType.Int64, fused.Rows.dtype);
        Assert.True(allclose(fused.Weights, reference.Weights, 1e-5, 1e-6),
            $"weights differ by {(fused.Weights - reference.Weights).abs().max().item<float>()}");
        Assert.True(allclose(xf.grad!, xr.grad!, 1e-4, 1e-6),
            $"dx differs by {(xf.grad! - xr.grad!).abs().max().item<float>()}");
        Assert.Equal(0f, xf.grad![0, 0].item<float>());                   // sgn(0) = 0, like torch.abs
    }

    [Fact]
    public void Without_a_gradient_it_returns_plain_tensors_and_the_same_values()
    {
        var (x, _) = Inputs(5, 4, 8, seed: 3);
        using var noGrad = no_grad();
        var fused = FusedSignHash.Compute(x, 8, HashWeightFunction.L1ScaledSigmoidProduct, 1.0);
        var reference = SignHash.Reference(x, 8, HashWeightFunction.L1ScaledSigmoidProduct, 1.0);
        Assert.False(fused.Weights.requires_grad);
        Assert.True(allclose(fused.Weights, reference.Weights, 1e-5, 1e-6));
    }

    [Fact]
    public void Many_tokens_split_across_threads_give_the_same_result_as_the_reference()
    {
        var (x, _) = Inputs(3000, 64, 8, seed: 4);
        var fused = FusedSignHash.Compute(x, 8, HashWeightFunction.L1ScaledSigmoidProduct, 1.0);
        var reference = SignHash.Reference(x, 8, HashWeightFunction.L1ScaledSigmoidProduct, 1.0);
        Assert.True((fused.Rows == reference.Rows).all().item<bool>());
        Assert.True(allclose(fused.Weights, reference.Weights, 1e-5, 1e-6));
    }
}
