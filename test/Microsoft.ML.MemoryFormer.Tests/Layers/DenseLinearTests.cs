using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Tests.Layers;

/// <summary>
/// The dense baseline's Linear layers with <see cref="KernelSettings.Bf16DenseLinear"/>: off (the default) they are the
/// fp32 layer's bits; on they are autocast's bf16 linear, with fp32 outputs and fp32 gradients on the fp32 masters,
/// within bf16 rounding of fp32; MemoryFormer never changes.
/// </summary>
public class DenseLinearTests
{
    [Fact]
    public void The_switch_is_off_by_default_and_With_restores_it()
    {
        Assert.False(KernelSettings.Current.Bf16DenseLinear);
        bool inside = false;
        KernelSettings.Current.With(k => k.Bf16DenseLinear = true, () => inside = KernelSettings.Current.Bf16DenseLinear);
        Assert.True(inside);
        Assert.False(KernelSettings.Current.Bf16DenseLinear);
    }

    [Fact]
    public void Off_it_is_the_fp32_linear_layer_bit_for_bit()
    {
        random.manual_seed(3);
        using var layer = nn.Linear(24, 40);
        var x = randn(7, 24);
        Assert.Equal(Values(F.linear(x, layer.weight!, layer.bias!)), Values(DenseLinear.Apply(layer, x)));
        Assert.Equal(ScalarType.Float32, DenseLinear.Apply(layer, x, keepBf16: true).dtype);
    }

    [Fact]
    public void On_it_is_the_bf16_linear_with_fp32_outputs_and_fp32_gradients_within_rounding()
    {
        random.manual_seed(4);
        using var layer = nn.Linear(64, 48);
        var x = randn(9, 64).requires_grad_(true);
        var upstream = randn(9, 48);
        var (y32, g32) = OutputAndGradients(layer, x, upstream, bf16: false);
        var (y16, g16) = OutputAndGradients(layer, x, upstream, bf16: true);

        var bf = ScalarType.BFloat16;
        using (no_grad())
            Assert.Equal(Values(F.linear(x.to(bf), layer.weight!.to(bf), layer.bias!.to(bf)).to(ScalarType.Float32)), Values(y16));
        Assert.NotEqual(Values(y32), Values(y16));                                           // it did take the bf16 path
        Assert.True(allclose(y16, y32, rtol: 0.02, atol: 0.02));
        for (int i = 0; i < g32.Length; i++)
        {
            Assert.Equal(ScalarType.Float32, g16[i].dtype);                     // ∂L/∂x, ∂L/∂W, ∂L/∂b reach the fp32 tensors
            double scale = g32[i].abs().max().item<float>();
            Assert.True((g16[i] - g32[i]).abs().max().item<float>() < 0.02 * scale, $"gradient {i} differs by more than bf16 rounding");
        }
        KernelSettings.Current.With(k => k.Bf16DenseLinear = true, () =>
            Assert.Equal(ScalarType.BFloat16, DenseLinear.Apply(layer, x, keepBf16: true).dtype));
    }

    [Fact]
    public void On_a_dense_model_trains_within_rounding_and_MemoryFormer_keeps_its_bits()
    {
        var tokens = randint(0, 64, [2, 9]);
        var (dense32, dense16) = (Loss(TransformerKind.Dense, tokens, bf16: false), Loss(TransformerKind.Dense, tokens, bf16: true));
        Assert.NotEqual(dense32, dense16);
        Assert.Equal(dense32, dense16, 0.02 * dense32);
        Assert.Equal(Loss(TransformerKind.MemoryFormer, tokens, bf16: false), Loss(TransformerKind.MemoryFormer, tokens, bf16: true));
    }

    private static float[] Values(Tensor t) => t.detach().contiguous().data<float>().ToArray();

    private static (Tensor Y, Tensor[] Gradients) OutputAndGradients(Linear layer, Tensor x, Tensor upstream, bool bf16)
    {
        Tensor y = null!;
        Tensor[] gradients = null!;
        KernelSettings.Current.With(k => k.Bf16DenseLinear = bf16, () =>
        {
            y = DenseLinear.Apply(layer, x);                                    // [N, out]
            gradients = [.. autograd.grad([y], [x, layer.weight!, layer.bias!], [upstream])];
        });
        return (y.detach(), gradients);
    }

    /// <summary>A seeded Nano model's next-token loss on <paramref name="tokens"/>, forward and backward, with the switch set.</summary>
    private static float Loss(TransformerKind kind, Tensor tokens, bool bf16)
    {
        random.manual_seed(6);
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { Kind = kind });
        model.train();
        float loss = 0;
        KernelSettings.Current.With(k => k.Bf16DenseLinear = bf16, () =>
        {
            var logits = model.call(tokens[.., ..^1]);                          // [B, T, V]
            var l = F.cross_entropy(logits.reshape(-1, logits.shape[^1]), tokens[.., 1..].reshape(-1));
            l.backward();
            loss = l.item<float>();
        });
        return loss;
    }
}
