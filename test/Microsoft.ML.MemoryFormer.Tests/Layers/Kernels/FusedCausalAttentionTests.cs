using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The managed causal attention (<see cref="FusedCausalAttention"/>) against libtorch's causal
/// <c>scaled_dot_product_attention</c>: output and the gradients of q, k, v, its determinism, and a whole model's loss
/// and parameter gradients with <see cref="KernelSettings.FusedCausalAttention"/> on and off.</summary>
public class FusedCausalAttentionTests
{
    private static bool Available => CausalAttentionKernel.Supports(32);

    /// <summary>y and ∂L/∂q, ∂L/∂k, ∂L/∂v of <paramref name="attend"/> for L = Σ y ∘ upstream; v given as <paramref name="layout"/>
    /// makes it (0: contiguous [B, H, T, hd]; 1: a transposed view of [B, T, H, hd]; 2: a chunk of a wider tensor).</summary>
    internal static Tensor[] Run(Func<Tensor, Tensor, Tensor, Tensor> attend, Tensor q0, Tensor k0, Tensor v0, Tensor upstream, int layout)
    {
        var q = q0.clone().requires_grad_(true);
        var k = k0.clone().requires_grad_(true);
        var v = v0.clone().requires_grad_(true);
        var vIn = layout switch
        {
            1 => v.transpose(1, 2).contiguous().transpose(1, 2),
            2 => cat([v, v * 2], -1).chunk(2, -1)[0],
            _ => v,
        };
        var y = attend(q, k, vIn);
        (y * upstream).sum().backward();
        return [y.detach(), q.grad!, k.grad!, v.grad!];
    }

    private static Tensor Sdpa(Tensor q, Tensor k, Tensor v) => F.scaled_dot_product_attention(q, k, v, null, 0.0, true);

    // T not a multiple of the 8-query tile or the 32-key tile; B·H above the two threads; T = 2, the shortest causal case.
    [Theory]
    [InlineData(2, 3, 37, 32, 0)]
    [InlineData(1, 2, 2, 64, 1)]
    [InlineData(3, 2, 70, 64, 1)]
    [InlineData(2, 2, 33, 32, 2)]
    public void Output_and_gradients_equal_causal_sdpa(int b, int h, int t, int hd, int layout)
    {
        if (!Available) return;                                                  // no AVX-512: SDPA serves every call
        var gen = new Generator((ulong)((b * 1000) + t));
        var q = randn([b, h, t, hd], generator: gen);
        var k = randn([b, h, t, hd], generator: gen);
        var v = randn([b, h, t, hd], generator: gen);
        var upstream = randn([b, h, t, hd], generator: gen);

        var fused = Run(FusedCausalAttention.Apply, q, k, v, upstream, layout);
        var reference = Run(Sdpa, q, k, v, upstream, layout);

        string[] names = ["y", "∂L/∂q", "∂L/∂k", "∂L/∂v"];
        for (int i = 0; i < 4; i++)
            Assert.True(allclose(fused[i], reference[i], 1e-4, 1e-5), $"{names[i]} differs by {(fused[i] - reference[i]).abs().max().item<float>()}");
    }

    [Fact]
    public void Forward_without_gradients_equals_the_autograd_forward()
    {
        if (!Available) return;
        var gen = new Generator(3);
        var (q, k, v) = (randn([2, 2, 19, 32], generator: gen), randn([2, 2, 19, 32], generator: gen), randn([2, 2, 19, 32], generator: gen));
        Tensor plain;
        using (no_grad())
            plain = FusedCausalAttention.Apply(q, k, v);
        var tracked = FusedCausalAttention.Apply(q.requires_grad_(true), k, v).detach();
        Assert.True(plain.eq(tracked).all().item<bool>());
        Assert.True(allclose(plain, Sdpa(q.detach(), k, v), 1e-4, 1e-5));
    }

    [Fact]
    public void Two_runs_give_the_same_bits()
    {
        if (!Available) return;
        var gen = new Generator(9);
        var (q, k, v, g) = (randn([4, 3, 45, 64], generator: gen), randn([4, 3, 45, 64], generator: gen), randn([4, 3, 45, 64], generator: gen), randn([4, 3, 45, 64], generator: gen));
        var first = Run(FusedCausalAttention.Apply, q, k, v, g, 1);
        var second = Run(FusedCausalAttention.Apply, q, k, v, g, 1);
        for (int i = 0; i < 4; i++)
            Assert.True(first[i].eq(second[i]).all().item<bool>(), $"output {i} changed between identical runs");
    }

    [Fact]
    public void Unsupported_shapes_are_refused_and_left_to_sdpa()
    {
        var q = randn(1, 2, 5, 16);
        Assert.False(FusedCausalAttention.IsSupported(q, q, q));                  // hd 16: not a multiple of 32
        Assert.False(FusedCausalAttention.IsSupported(randn(1, 2, 1, 32), randn(1, 2, 1, 32), randn(1, 2, 1, 32)));   // T = 1
        var longer = randn(1, 1, FusedCausalAttention.MaxTokens + 1, 32);
        Assert.False(FusedCausalAttention.IsSupported(longer, longer, longer));     // beyond the per-thread scratch bound
        Assert.Throws<ArgumentException>(() => FusedCausalAttention.Apply(q, q, q));
    }

    // A tiny language model's loss and every parameter gradient, the managed attention against SDPA, in both models.
    [Theory]
    [InlineData(TransformerKind.Dense)]
    [InlineData(TransformerKind.MemoryFormer)]
    public void Model_loss_and_gradients_equal_the_sdpa_path(TransformerKind kind)
    {
        if (!Available) return;
        random.manual_seed(21);
        var config = MemoryFormerConfig.Nano with { Kind = kind, Width = 64, Heads = 2, BitsPerChunk = 4, RotaryFraction = 0.5, VocabularySize = 40 };
        using var model = new LanguageModel(config);
        model.train();
        var windows = randint(0, 40, [3, 14], generator: new Generator(5));
        (float Loss, Tensor[] Grads) Step(bool fused)
        {
            float loss = 0;
            Tensor[] grads = [];
            KernelSettings.Current.With(k => (k.FusedCausalAttention, k.Bf16GradientRows) = (fused, false), () =>   // fp32 row pass: equal paths up to attention's rounding
            {
                model.zero_grad();
                var logits = model.call(windows.narrow(1, 0, 13));                      // [B, T, V]
                var value = F.cross_entropy(logits.reshape(-1, 40), windows.narrow(1, 1, 13).reshape(-1));
                value.backward();
                loss = value.item<float>();
                grads = model.parameters().Select(p => p.grad is null ? zeros(1) : p.grad.clone()).ToArray();
            });
            return (loss, grads);
        }

        var (fusedLoss, fusedGrads) = Step(fused: true);
        var (referenceLoss, referenceGrads) = Step(fused: false);

        Assert.Equal(referenceLoss, fusedLoss, 4);
        Assert.Contains(fusedGrads.Zip(referenceGrads), p => !p.First.eq(p.Second).all().item<bool>());  // the switch did change the path
        for (int i = 0; i < fusedGrads.Length; i++)
            Assert.True(allclose(fusedGrads[i], referenceGrads[i], 1e-3, 1e-5),
                $"parameter {i} gradient differs by {(fusedGrads[i] - referenceGrads[i]).abs().max().item<float>()}");
    }
}
