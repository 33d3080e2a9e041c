using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The Memory Layer's reused table-gradient buffer against the libtorch path's fresh gradients.</summary>
public class TableGradientTests
{
    private static Tensor TableGrad(MemoryLayer layer, Tensor x, bool fused, bool clear = true)
    {
        bool previous = TorchRuntime.UseFusedKernels;
        TorchRuntime.UseFusedKernels = fused;
        try
        {
            if (clear) layer.Table.grad = null;
            (layer.call(x) * x.narrow(1, 0, 16)).sum().backward();
            return layer.Table.grad!.clone();
        }
        finally { TorchRuntime.UseFusedKernels = previous; }
    }

    [Fact]
    public void Reused_buffer_matches_fresh_gradients_step_after_step_and_accumulates_like_autograd()
    {
        random.manual_seed(5);
        using var layer = new MemoryLayer(4, 6, 16, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        var x1 = randn(40, 24);
        var x2 = randn(3, 24);                                        // few tokens: most rows untouched, must be zero

        Assert.True(allclose(TableGrad(layer, x1, fused: true), TableGrad(layer, x1, fused: false), 1e-4, 1e-6));
        var second = TableGrad(layer, x2, fused: true);
        Assert.True(allclose(second, TableGrad(layer, x2, fused: false), 1e-4, 1e-6));

        TableGrad(layer, x1, fused: true);
        var accumulated = TableGrad(layer, x2, fused: true, clear: false);
        var expected = TableGrad(layer, x1, fused: false) + TableGrad(layer, x2, fused: false);
        Assert.True(allclose(accumulated, expected, 1e-4, 1e-6));
    }

    [Fact]
    public void Small_batches_writing_only_their_rows_still_leave_the_exact_gradient()
    {
        random.manual_seed(7);
        using var layer = new MemoryLayer(4, 6, 16, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        // 1–3 tokens touch ≤ 12 of 256 rows (the sparse write); 40 tokens touch most rows (the dense write)
        var batches = new[] { randn(2, 24), randn(3, 24), randn(1, 24), randn(40, 24), randn(2, 24), randn(2, 24) };
        foreach (var x in batches)
        {
            var fused = TableGrad(layer, x, fused: true);
            Assert.True(allclose(fused, TableGrad(layer, x, fused: false), 1e-4, 1e-6));
        }
        TableGrad(layer, batches[0], fused: true);
        layer.Table.grad!.mul_(0.5);                                   // clipping scales in place: zeros stay zero
        layer.Table.grad = null;
        Assert.True(allclose(TableGrad(layer, batches[1], fused: true), TableGrad(layer, batches[1], fused: false), 1e-4, 1e-6));
    }

    [Fact]
    public void The_backward_records_the_squared_norm_of_the_gradient_it_wrote()
    {
        random.manual_seed(6);
        using var layer = new MemoryLayer(4, 6, 16, HashWeightFunction.SigmoidProduct, 0.8, 0.1, 0.01);
        var grad = TableGrad(layer, randn(30, 24), fused: true);
        Assert.True(layer.Gradient.TryTakeSquaredNorm(layer.Table, out double squared));
        Assert.Equal(grad.pow(2).sum().item<float>(), squared, 3);
        Assert.False(layer.Gradient.TryTakeSquaredNorm(layer.Table, out _));   // taken once
    }
}
