using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>A whole language-model loss and its parameter gradients with the managed RMSNorm and rotary against their
/// torch ops (<see cref="KernelSettings.FusedNormAndRotary"/> off): equal within float rounding, in both models.</summary>
public class FusedNormAndRotaryModelTests
{
    [Theory]
    [InlineData(TransformerKind.Dense)]
    [InlineData(TransformerKind.MemoryFormer)]
    public void Loss_and_every_parameter_gradient_equal_the_torch_ops_path(TransformerKind kind)
    {
        random.manual_seed(21);
        var config = MemoryFormerConfig.Nano with { Kind = kind, Width = 32, Heads = 2, BitsPerChunk = 4, RotaryFraction = 0.5, VocabularySize = 40 };
        using var model = new LanguageModel(config);
        model.train();
        var windows = randint(0, 40, [3, 9], generator: new Generator(5));
        (float Loss, Tensor[] Grads) Run(bool fused)
        {
            float loss = 0;
            Tensor[] grads = [];
            KernelSettings.Current.With(k => k.FusedNormAndRotary = fused, () =>
            {
                model.zero_grad();
                var logits = model.call(windows.narrow(1, 0, 8));                       // [B, T, V]
                var value = F.cross_entropy(logits.reshape(-1, 40), windows.narrow(1, 1, 8).reshape(-1));
                value.backward();
                loss = value.item<float>();
                grads = model.parameters().Select(p => p.grad is null ? zeros(1) : p.grad.clone()).ToArray();
            });
            return (loss, grads);
        }

        var (fusedLoss, fusedGrads) = Run(fused: true);
        var (referenceLoss, referenceGrads) = Run(fused: false);

        Assert.Equal(referenceLoss, fusedLoss, 4);
        Assert.Equal(referenceGrads.Length, fusedGrads.Length);
        for (int i = 0; i < fusedGrads.Length; i++)
            Assert.True(allclose(fusedGrads[i], referenceGrads[i], 1e-3, 1e-5),
                $"parameter {i} gradient differs by {(fusedGrads[i] - referenceGrads[i]).abs().max().item<float>()}");
    }

    // KernelSettings.StridedRotaryGradient: the rotary backward reads SDPA's token-major ∂L/∂q, ∂L/∂k in place instead of a
    // contiguous copy; PooledAttentionOutput: the heads' outputs are copied into a reused kernel block (a training runs) instead
    // of fresh memory. The loss and every parameter gradient keep their bits.
    [Theory]
    [InlineData(TransformerKind.Dense)]
    [InlineData(TransformerKind.MemoryFormer)]
    public void Attention_without_fresh_copies_keeps_the_loss_and_every_gradient_bit(TransformerKind kind)
    {
        random.manual_seed(22);
        var config = MemoryFormerConfig.Nano with { Kind = kind, Width = 64, Heads = 2, BitsPerChunk = 4, RotaryFraction = 0.5, VocabularySize = 40, ContextLength = 32 };
        using var model = new LanguageModel(config);
        model.train();
        var windows = randint(0, 40, [4, 33], generator: new Generator(6));
        using var training = KernelBuffers.Training();                                 // kernel blocks are reused only while a training runs
        byte[][] Grads(bool lean)
        {
            byte[][] grads = [];
            KernelSettings.Current.With(k => (k.StridedRotaryGradient, k.PooledAttentionOutput) = (lean, lean), () =>
            {
                model.zero_grad();
                var logits = model.call(windows.narrow(1, 0, 32));                      // [B, T, V]
                var loss = F.cross_entropy(logits.reshape(-1, 40), windows.narrow(1, 1, 32).reshape(-1));
                loss.backward();
                grads = [loss.detach().bytes.ToArray(), .. model.parameters().Select(p => p.grad is null ? [] : p.grad.contiguous().bytes.ToArray())];
            });
            return grads;
        }

        var inPlace = Grads(lean: true);
        var copied = Grads(lean: false);
        Assert.Equal(copied.Length, inPlace.Length);
        for (int i = 0; i < inPlace.Length; i++)
            Assert.True(copied[i].AsSpan().SequenceEqual(inPlace[i]), i == 0 ? "the loss's bits differ" : $"parameter {i - 1}'s gradient bits differ");
    }
}
