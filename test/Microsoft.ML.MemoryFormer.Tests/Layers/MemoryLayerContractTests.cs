using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers;

/// <summary>
/// A standalone <see cref="MemoryLayer"/> keeps autograd's contract on the fused CPU path (the table gradient comes
/// back through autograd), and refuses inputs of the wrong width.
/// </summary>
public class MemoryLayerContractTests
{
    private static MemoryLayer NewLayer(int seed = 5)
    {
        random.manual_seed(seed);
        return new MemoryLayer(4, 6, 16, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
    }

    /// <summary>A loss whose upstream gradient differs per output element.</summary>
    private static Tensor Loss(MemoryLayer layer, Tensor x) => (layer.call(x) * x.narrow(1, 0, 16)).sum();

    /// <summary>∂loss/∂table on the libtorch path (EmbeddingBag, plain autograd), the reference.</summary>
    private static Tensor ReferenceGradient(MemoryLayer layer, Tensor x)
    {
        bool previous = TorchRuntime.UseFusedKernels;
        TorchRuntime.UseFusedKernels = false;
        try
        {
            return autograd.grad([Loss(layer, x)], [layer.Table])[0].clone();
        }
        finally { TorchRuntime.UseFusedKernels = previous; }
    }

    [Fact]
    public void Autograd_grad_sees_the_table_gradient_and_leaves_grad_alone()
    {
        using var layer = NewLayer();
        var x = randn(40, 24);
        var grads = autograd.grad([Loss(layer, x)], [layer.Table, layer.Bias]);
        Assert.True(allclose(grads[0], ReferenceGradient(layer, x), 1e-4, 1e-6), "table gradient differs from the reference");
        Assert.True(grads[0].abs().sum().item<float>() > 0);
        Assert.True(layer.Table.grad is null || layer.Table.grad.IsInvalid, "autograd.grad must not write .grad");
    }

    [Fact]
    public void Backward_with_inputs_fills_only_the_named_parameters()
    {
        using var layer = NewLayer();
        var x = randn(40, 24);
        Loss(layer, x).backward(inputs: [layer.Table]);
        Assert.NotNull(layer.Table.grad);
        Assert.True(allclose(layer.Table.grad!, ReferenceGradient(layer, x), 1e-4, 1e-6));
        Assert.True(layer.Bias.grad is null || layer.Bias.grad.IsInvalid, "the bias was not named in inputs");

        layer.Table.grad = null;
        Loss(layer, x).backward(inputs: [layer.Bias]);
        Assert.True(layer.Table.grad is null || layer.Table.grad.IsInvalid, "the table was not named in inputs");
        Assert.NotNull(layer.Bias.grad);
    }

    [Fact]
    public void A_kept_grad_is_never_overwritten_and_gradients_accumulate()
    {
        using var layer = NewLayer();
        var (x1, x2) = (randn(3, 24), randn(5, 24));
        Loss(layer, x1).backward();
        var kept = layer.Table.grad!;                                   // kept without a clone
        var keptValues = kept.clone();
        layer.Table.grad = null;
        Loss(layer, x2).backward();                                     // a new step
        Assert.True(kept.eq(keptValues).all().item<bool>(), "the kept gradient was overwritten by the next backward");

        Loss(layer, x1).backward();                                     // accumulates into the current grad
        var expected = ReferenceGradient(layer, x1) + ReferenceGradient(layer, x2);
        Assert.True(allclose(layer.Table.grad!, expected, 1e-4, 1e-6));
    }

    [Fact]
    public void A_retained_graph_can_be_run_backward_twice()
    {
        using var layer = NewLayer();
        var x = randn(20, 24).requires_grad_(true);
        var loss = Loss(layer, x);
        loss.backward(retain_graph: true);
        var once = layer.Table.grad!.clone();
        var dxOnce = x.grad!.clone();
        loss.backward();
        Assert.True(allclose(layer.Table.grad!, once * 2, 1e-5, 1e-7));
        Assert.True(allclose(x.grad!, dxOnce * 2, 1e-5, 1e-7));
    }

    [Fact]
    public void A_training_optimizer_attaches_the_in_place_buffers_for_its_lifetime_only_and_a_retained_graph_still_runs_twice()
    {
        random.manual_seed(2);
        using var model = new LanguageModel(MemoryFormerConfig.Nano);
        var layers = model.modules().OfType<MemoryLayer>().ToList();
        Assert.All(layers, l => Assert.False(l.Gradient.Attached));
        using (new ModelOptimizer(model, new TrainingOptions()))
        {
            Assert.All(layers, l => Assert.True(l.Gradient.Attached));
            var tokens = randint(0, 64, [2, 8], dtype: ScalarType.Int64);
            var loss = model.call(tokens).sum();
            loss.backward(retain_graph: true);
            var once = layers[0].Table.grad!.clone();
            loss.backward();                                             // accumulates into the in-place buffer
            Assert.True(allclose(layers[0].Table.grad!, once * 2, 1e-5, 1e-7));
        }
        Assert.All(layers, l => Assert.False(l.Gradient.Attached));
    }

    [Theory]
    [InlineData(18)]   // passes the divisibility check (3 chunks of τ = 6) but is one chunk short
    [InlineData(30)]
    [InlineData(25)]
    public void An_input_of_the_wrong_width_is_refused_with_both_widths(int width)
    {
        using var layer = NewLayer();
        var e = Assert.Throws<ArgumentException>(() => layer.call(randn(3, width)));
        Assert.Contains("= 24", e.Message);
        Assert.Contains($"got {width}", e.Message);
    }

    [Theory]
    [InlineData(0, 6, 16, 1.0)]
    [InlineData(4, 21, 16, 1.0)]
    [InlineData(4, 6, 0, 1.0)]
    [InlineData(4, 6, 16, 1e-39)]   // validated as > 0 before, yet 2/t overflows fp32 and zeros get a NaN weight
    [InlineData(4, 6, 16, 1e5)]
    public void Constructor_arguments_out_of_range_are_named(int chunks, int bits, int width, double temperature)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
        {
            using var layer = new MemoryLayer(chunks, bits, width, HashWeightFunction.SigmoidProduct, temperature, 0.1, 0.01);
        });
        Assert.Contains("MemoryLayer:", e.Message);
    }

    [Fact]
    public void At_the_smallest_temperature_the_paper_weights_stay_finite()
    {
        random.manual_seed(1);
        using var layer = new MemoryLayer(4, 6, 16, HashWeightFunction.SigmoidProduct, MemoryFormerConfig.MinTemperature, 0.1, 0.01);
        var x = randn(8, 24);
        x[0] = zeros(24);                                               // zeros: 0 · (−2/t) must stay 0, not NaN
        var y = layer.call(x.requires_grad_(true));
        y.sum().backward();
        Assert.True(y.isfinite().all().item<bool>());
        Assert.True(x.grad!.isfinite().all().item<bool>());
    }
}
