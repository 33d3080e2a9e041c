using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The managed RMSNorm against the torch-ops reference: output, ∂L/∂x and ∂L/∂gain.</summary>
public class FusedRmsNormTests
{
    private static (Tensor X, Tensor Upstream) Inputs(long[] shape, long seed)
    {
        var gen = new Generator((ulong)seed);
        var x = randn(shape, generator: gen) * 1.5;
        x.view(-1, shape[^1])[1] = zeros(shape[^1]);                        // a whole row of zeros: gradient of ‖0‖
        return (x, randn(shape, generator: gen));
    }

    private static RmsNorm Norm(int width, double epsilon, long seed)
    {
        var norm = new RmsNorm(width, epsilon);
        using (no_grad())
            norm.Weight.copy_(randn([width], generator: new Generator((ulong)seed)) + 1);
        return norm;
    }

    // d = 1, 13 (scalar tails), 256 (the training width); 37 rows = one gain block, 150 = three with a partial one;
    // a 3-D input as the transformer blocks pass it.
    [Theory]
    [InlineData(new long[] { 37, 256 }, 1e-5)]
    [InlineData(new long[] { 150, 13 }, 1e-6)]
    [InlineData(new long[] { 3, 50, 24 }, 1e-5)]
    [InlineData(new long[] { 9, 1 }, 1e-3)]
    public void Output_and_gradients_equal_the_torch_ops_path(long[] shape, double epsilon)
    {
        int width = (int)shape[^1];
        var (x, upstream) = Inputs(shape, seed: width + shape.Length);
        using var fused = Norm(width, epsilon, seed: 3);
        using var reference = Norm(width, epsilon, seed: 3);
        var xf = x.clone().requires_grad_(true);
        var xr = x.clone().requires_grad_(true);

        var yf = FusedRmsNorm.Apply(xf, fused.Weight, epsilon);
        var yr = reference.Reference(xr);
        (yf * upstream).sum().backward();
        (yr * upstream).sum().backward();

        AssertClose(yr, yf, "output");
        AssertClose(xr.grad!, xf.grad!, "∂L/∂x");
        AssertClose(reference.Weight.grad!, fused.Weight.grad!, "∂L/∂gain");
    }

    [Fact]
    public void The_module_uses_the_kernel_only_while_fused_kernels_are_on_and_both_paths_agree()
    {
        var (x, _) = Inputs([20, 32], seed: 5);
        using var norm = Norm(32, 1e-5, seed: 6);
        Tensor fused = null!, reference = null!;
        KernelSettings.Current.With(k => k.UseFusedKernels = true, () => fused = norm.call(x));
        KernelSettings.Current.With(k => k.UseFusedKernels = false, () => reference = norm.call(x));
        AssertClose(reference, fused, "module output");
        Assert.True(fused.requires_grad, "the gain is a parameter: the fused output must carry a gradient");
    }

    [Fact]
    public void A_frozen_gain_or_an_input_without_gradient_gets_only_the_gradient_it_asks_for()
    {
        var (x, upstream) = Inputs([70, 16], seed: 8);
        using var norm = Norm(16, 1e-5, seed: 9);
        FusedRmsNorm.Apply(x, norm.Weight, 1e-5).mul(upstream).sum().backward();  // x without grad: gain only
        Assert.NotNull(norm.Weight.grad);
        norm.Weight.requires_grad = false;
        var xg = x.clone().requires_grad_(true);
        FusedRmsNorm.Apply(xg, norm.Weight, 1e-5).mul(upstream).sum().backward(); // frozen gain: x only
        Assert.NotNull(xg.grad);
        using (no_grad())
            Assert.False(FusedRmsNorm.Apply(xg, norm.Weight, 1e-5).requires_grad, "no graph under no_grad");
    }

    [Fact]
    public void The_gain_gradient_is_bitwise_the_same_for_one_and_two_threads()
    {
        var (x, upstream) = Inputs([300, 40], seed: 11);
        Tensor GainGradient(int threads)
        {
            int saved = get_num_threads();
            set_num_threads(threads);
            try
            {
                using var norm = Norm(40, 1e-5, seed: 12);
                var xg = x.clone().requires_grad_(true);
                FusedRmsNorm.Apply(xg, norm.Weight, 1e-5).mul(upstream).sum().backward();
                return cat([norm.Weight.grad!.clone(), xg.grad!.flatten()]);
            }
            finally
            {
                set_num_threads(saved);
            }
        }
        Assert.True((GainGradient(1) == GainGradient(2)).all().item<bool>(), "gradients differ between 1 and 2 threads");
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what) =>
        Assert.True(allclose(actual, expected, 1e-4, 1e-5),
            $"{what} differs by {(actual - expected).abs().max().item<float>()}");
}
