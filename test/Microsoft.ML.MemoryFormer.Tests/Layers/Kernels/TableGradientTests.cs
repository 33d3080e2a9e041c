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
            int width = layer.OutputWidth, copies = (width + (int)x.shape[1] - 1) / (int)x.shape[1];
            // The fp32 row pass: the bf16 one (opt-in) differs by ∂L/∂y's rounding (Bf16GradientRowsTests).
            KernelSettings.Current.With(k => k.Bf16GradientRows = false,
                () => (layer.call(x) * x.repeat(1, copies).narrow(1, 0, width)).sum().backward());   // an upstream gradient from x
            return layer.Table.grad!.clone();
        }
        finally { TorchRuntime.UseFusedKernels = previous; }
    }

    [Fact]
    public void Reused_buffer_matches_fresh_gradients_step_after_step_and_accumulates_like_autograd()
    {
        random.manual_seed(5);
        using var layer = new MemoryLayer(4, 6, 16, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        layer.Gradient.Attached = true;                               // as ModelOptimizer does for a training run
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
        layer.Gradient.Attached = true;                               // as ModelOptimizer does for a training run
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

    [Theory]
    [InlineData(16, 30)]
    [InlineData(200, 30)]    // 128-wide and 32-wide tiles and a scalar tail, ordinary stores (rows not 64-byte aligned)
    [InlineData(256, 30)]    // non-temporal stores, norm from registers
    [InlineData(256, 2)]     // few touched rows: the sparse write
    public void The_backward_writes_the_gradient_and_records_its_squared_norm(int width, int tokens)
    {
        random.manual_seed(6);
        using var layer = new MemoryLayer(4, 6, width, HashWeightFunction.SigmoidProduct, 0.8, 0.1, 0.01);
        layer.Gradient.Attached = true;
        // x needs a gradient, so the row pass also computes the weight gradient (RowGradientKernel) and takes the norm
        // from its registers; without it the plain gather writes the rows and reads them back.
        var x = randn(tokens, 24).requires_grad_(width > 16);
        var grad = TableGrad(layer, x, fused: true);
        Assert.True(layer.Gradient.TryTakeSquaredNorm(layer.Table, out double squared));
        Assert.True(allclose(grad, TableGrad(layer, x, fused: false), 1e-4, 1e-6));   // streamed rows hold the right values
        double expected = grad.pow(2).sum().item<float>();
        Assert.True(expected > 0);
        Assert.Equal(expected, squared, expected * 1e-5);
        Assert.False(layer.Gradient.TryTakeSquaredNorm(layer.Table, out _));   // taken once
    }

    [Theory]
    [InlineData(64, 600)]    // most rows touched: every row written
    [InlineData(200, 600)]   // 128- and 32-wide tiles and a scalar tail
    [InlineData(512, 20)]    // few rows touched: the sparse write
    public void Prefetching_the_next_rows_hits_changes_no_bit_of_either_gradient(int width, int tokens)
    {
        random.manual_seed(11);
        using var layer = new MemoryLayer(8, 8, width, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        layer.Gradient.Attached = true;
        var x = randn(tokens, 64).requires_grad_(true);
        var upstream = randn(tokens, width);
        (Tensor Table, Tensor X) Backward(bool prefetch)
        {
            (Tensor, Tensor) result = default;
            KernelSettings.Current.With(k => k.PrefetchHitRows = prefetch, () =>
            {
                layer.Table.grad = null;
                x.grad = null;
                (layer.call(x) * upstream).sum().backward();
                result = (layer.Table.grad!.clone(), x.grad!.clone());
            });
            return result;
        }
        var on = Backward(true);
        var off = Backward(false);
        Assert.True(on.Table.abs().sum().item<float>() > 0);
        Assert.True(on.Table.eq(off.Table).all().item<bool>(), "the table gradient differs");
        Assert.True(on.X.eq(off.X).all().item<bool>(), "the weight gradient (through the hash into x) differs");
    }

    [Theory]
    [InlineData(64, 600)]    // most rows touched: every row written, the pass split over threads
    [InlineData(512, 20)]    // few rows touched: the sparse write, split over threads
    public void The_recorded_norm_is_the_same_bits_on_one_and_two_threads(int width, int tokens)
    {
        random.manual_seed(8);
        using var layer = new MemoryLayer(8, 8, width, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        layer.Gradient.Attached = true;
        var x = randn(tokens, 64);
        // Upstream rows over 16 decades: row norms so different in size that their double sum depends on its order.
        var upstream = randn(tokens, width) * pow(10.0, randint(-8, 9, [tokens, 1]).to(ScalarType.Float32));
        (double Norm, Tensor Grad) Backward(int threads)
        {
            int previous = get_num_threads();
            set_num_threads(threads);
            try
            {
                layer.Table.grad = null;
                (layer.call(x) * upstream).sum().backward();
                Assert.True(layer.Gradient.TryTakeSquaredNorm(layer.Table, out double squared));
                return (squared, layer.Table.grad!.clone());
            }
            finally { set_num_threads(previous); }
        }
        var one = Backward(1);
        var two = Backward(2);
        Assert.Equal(BitConverter.DoubleToInt64Bits(one.Norm), BitConverter.DoubleToInt64Bits(two.Norm));
        Assert.True(one.Grad.eq(two.Grad).all().item<bool>());
    }
}
